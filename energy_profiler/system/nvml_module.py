"""Which module speaks NVML: pynvml (nvidia-ml-py), or the fake MUTATION_NVML_MODULE names for tests.

Loaded when called, never at import: nothing touches the driver until a monitor or a knob needs it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType

NvmlLoader = Callable[[], ModuleType]
NVML_MODULE_ENV = "MUTATION_NVML_MODULE"
"""Name of the module to use instead of pynvml (a fake with the same functions, for tests)."""


def load_pynvml() -> ModuleType:
    return importlib.import_module(os.environ.get(NVML_MODULE_ENV, "pynvml"))
