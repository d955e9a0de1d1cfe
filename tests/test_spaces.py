import random

import pytest

from nas.ops import resolve
from nas.space import (
    SearchSpace,
    get_reference,
    get_space,
    list_references,
    list_spaces,
    reference_space,
    register_reference,
    register_space,
)
from nas.spec import ArchSpec, SpecError

SHAPES = [((28, 28, 1), 10), ((224, 224, 3), 1000)]
SPACES = list_spaces()


def test_registry_lists_the_bundled_spaces():
    assert {"mobilenet_v1", "mobilenet_v2", "proxylessnas", "shufflenet_v2", "squeezenet", "hybrid"} <= set(SPACES)
    assert list_spaces("mobilenet*") == ["mobilenet_v1", "mobilenet_v2"]


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("shape, classes", SHAPES)
def test_space_contract(name, shape, classes):
    space = get_space(name, shape, classes)
    params = space.parameters()
    assert params and all(len(choices) > 1 for choices in params.values())
    for choices in params.values():
        assert all(isinstance(c, (bool, int, float, str)) for c in choices)
    reachable = space.reachable_ops()
    rng = random.Random(0)
    for _ in range(25):
        sampled = space.sample_params(rng)
        spec = space.decode(sampled)
        assert spec.input == shape and spec.classes == classes
        encoded = space.encode(spec)
        assert list(encoded) == list(params)  # fixed length, same order in every trial
        assert space.decode(encoded) == spec
        assert ArchSpec.from_json(spec.to_json()) == spec
        assert ArchSpec.from_string(spec.to_string()) == spec
        assert set(resolve(spec)) <= reachable
        assert space.contains(spec)


@pytest.mark.parametrize("name", SPACES)
def test_sampling_is_seeded(name):
    space = get_space(name)
    assert space.sample(7) == space.sample(7)
    assert len({space.sample(seed).arch_id for seed in range(10)}) > 1


@pytest.mark.parametrize("name", SPACES)
def test_size_counts_distinct_stage_variants(name):
    space = get_space(name)
    assert space.size() > 1
    for i in range(space.num_stages):
        variants = list(space.stage_variants(i))
        assert len(variants) == len(set(variants))
        rng = random.Random(i)
        for _ in range(20):
            assert space.decode(space.sample_params(rng)).stages[i] in set(variants)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "squeezenet", "hybrid"])
def test_stage_variants_are_exactly_what_parameters_decode_to(name):
    # Enumerate each stage's full parameter product (small enough for these spaces): the
    # distinct decoded stages must be exactly stage_variants, so size() counts architectures.
    import itertools

    space = get_space(name)
    for i in range(space.num_stages):
        choices = space.stage_parameters(i)
        decoded = {space.decode_stage(i, dict(zip(choices, values)))
                   for values in itertools.product(*choices.values())}
        assert decoded == set(space.stage_variants(i))
    if name == "mobilenet_v1":
        assert space.size() == 165_888


@pytest.mark.parametrize("name", SPACES)
def test_decode_rejects_bad_parameters(name):
    space = get_space(name)
    params = space.sample_params(random.Random(0))
    first = next(iter(params))
    with pytest.raises(SpecError, match=f"parameter '{first}' = 'bogus' is not a choice"):
        space.decode({**params, first: "bogus"})
    with pytest.raises(SpecError, match="missing parameter"):
        space.decode({k: v for k, v in params.items() if k != first})
    with pytest.raises(SpecError, match="unknown parameter 'nope'"):
        space.decode({**params, "nope": 1})


def test_encode_rejects_specs_outside_the_space():
    space = get_space("mobilenet_v2")
    with pytest.raises(SpecError, match="is for input"):
        space.encode(get_space("mobilenet_v2", (224, 224, 3), 1000).sample(0))
    with pytest.raises(SpecError, match="stem or head differs"):
        space.encode(get_space("hybrid").sample(0))
    imagenet_space = get_space("proxylessnas", (224, 224, 3), 1000)
    assert not imagenet_space.contains(get_reference("proxyless_mobile", (224, 224, 3), 1000))
    assert space.contains(get_reference("mobilenet_v2_1.0"))


def test_typo_in_space_name_suggests_the_closest():
    with pytest.raises(SpecError, match="unknown search space 'mobilenet_v3'.*did you mean 'mobilenet_v2'"):
        get_space("mobilenet_v3")


def test_space_options_are_validated():
    with pytest.raises(SpecError, match="width_mult must be in"):
        get_space("mobilenet_v2", width_mult=0)
    with pytest.raises(SpecError, match="input shape must be"):
        get_space("hybrid", (28, 28), 10)
    with pytest.raises(TypeError):
        get_space("hybrid", colour="blue")


def test_registries_refuse_duplicates():
    class Dup(SearchSpace):
        name = "mobilenet_v2"

    with pytest.raises(ValueError, match="already registered"):
        register_space(Dup)
    with pytest.raises(ValueError, match="already registered"):
        register_reference("mobilenet_v2_1.0", "mobilenet_v2")(lambda shape, classes: None)


@pytest.mark.parametrize("name", list_references())
def test_every_reference_names_a_registered_space(name):
    assert reference_space(name) in SPACES


def test_small_inputs_get_stride_one_stems():
    for name in SPACES:
        assert get_space(name).stem()[0].stride == 1
        assert get_space(name, (224, 224, 3), 1000).stem()[0].stride == 2
