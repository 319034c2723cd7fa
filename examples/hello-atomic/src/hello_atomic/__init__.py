"""An example package: installed atomically, it greets with its version."""

VERSION = "1.0"


def main() -> None:
    print(f"hello from hello-atomic {VERSION}, installed atomically")
