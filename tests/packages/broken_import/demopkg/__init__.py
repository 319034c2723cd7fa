VERSION = "@VERSION@"

raise RuntimeError("demo-pkg @VERSION@ is broken on purpose")
