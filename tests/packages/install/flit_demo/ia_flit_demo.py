"""install-atomic test project (flit_core)."""

VERSION = "1.0"
BACKEND = "flit_core"
