"""The bundled search spaces, one family per module; importing this package registers them."""

from search_spaces import (  # noqa: F401  (imported for their registrations)
    fbnet,
    hybrid,
    mobilenet_v1,
    mobilenet_v2,
    nasbench201,
    ofa_mobilenet_v3,
    proxylessnas,
    shufflenet_v2,
    squeezenet,
)
