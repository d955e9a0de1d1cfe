import json

import pytest

from nas.cli import main
from nas.spec import ArchSpec


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_lists_names_and_sizes(capsys):
    code, out, _ = run(capsys, "spaces", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["mobilenet_v1"]["size"] == 165_888
    assert "mobilenet_v2_1.0" in rows["mobilenet_v2"]["references"]
    code, out, _ = run(capsys, "spaces")
    assert "165,888 architectures" in out


def test_arch_show_json(capsys):
    code, out, _ = run(capsys, "arch", "show", "mobilenet_v2_1.0", "--input", "224x224x3", "--classes", "1000",
                       "--json")
    data = json.loads(out)
    assert code == 0
    assert data["params"] == 3_504_872
    assert {"arch_id", "params", "macs", "ops"} <= set(data)
    assert data["ops"][1]["type"] == "ir" and data["ops"][1]["input"] == "112x112x32"
    assert ArchSpec.from_dict(data["spec"]).arch_id == data["arch_id"]


def test_arch_show_table(capsys):
    code, out, _ = run(capsys, "arch", "show", "squeezenet1_1")
    assert code == 0
    assert "params 726,474" in out and "fire" in out


def test_sample_output_is_accepted_by_show(capsys, tmp_path):
    code, out, _ = run(capsys, "arch", "sample", "hybrid", "--seed", "4")
    assert code == 0
    path = tmp_path / "arch.json"
    path.write_text(out)
    code, shown, _ = run(capsys, "arch", "show", str(path), "--json")
    assert json.loads(shown)["arch_id"] == ArchSpec.from_json(out).arch_id
    spec_string = json.loads(shown)["string"]
    code, again, _ = run(capsys, "arch", "show", spec_string, "--json")
    assert json.loads(again)["arch_id"] == json.loads(shown)["arch_id"]


def test_sample_is_seeded(capsys):
    first = run(capsys, "arch", "sample", "squeezenet", "--seed", "3")[1]
    assert first == run(capsys, "arch", "sample", "squeezenet", "--seed", "3")[1]
    assert first != run(capsys, "arch", "sample", "squeezenet", "--seed", "4")[1]


@pytest.mark.parametrize("argv, message", [
    (["arch", "show", "mobilenetv2"], "did you mean 'mobilenet_v2_1.0'"),
    (["arch", "show", "missing.json"], "does not exist"),
    (["arch", "show", "28x28x1>10|conv_k3_s1_c8_bn_relu|zz_k3|gap,fc"], "unknown block type 'zz'"),
    (["arch", "sample", "mobilenet_v3"], "unknown search space 'mobilenet_v3'"),
])
def test_bad_input_gives_a_clear_error(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err


def test_bad_spec_file(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"input": [28, 28, 1], "classes": 10, "stem": [], "stages": [], "head": [{"type": "fc"}], "x": 1}')
    code, _, err = run(capsys, "arch", "show", str(path))
    assert code == 2 and "is not a valid spec: unknown spec field(s) ['x']" in err
    path.write_text("{oops")
    code, _, err = run(capsys, "arch", "show", str(path))
    assert code == 2 and "not valid JSON" in err


def test_spec_file_for_another_input_is_an_error(capsys, tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(run(capsys, "arch", "sample", "mobilenet_v1")[1])
    code, _, err = run(capsys, "arch", "show", str(path), "--input", "32x32x3")
    assert code == 2 and "is a spec for input (28, 28, 1), not (32, 32, 3)" in err


@pytest.mark.parametrize("argv", [["arch", "show", "x", "--input", "28x28"], ["spaces", "--classes", "0"]])
def test_malformed_options_exit_with_usage(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err
