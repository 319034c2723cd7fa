VERSION = "@VERSION@"


def main() -> None:
    print(f"demo-cli {VERSION}")
