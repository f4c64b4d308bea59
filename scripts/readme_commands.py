"""Print the commands of the README's "Quick start" block, one a line, comments removed: what CI (.ci/run) runs in a
fresh virtual environment, so that the commands a new user copies are the ones tested.

    python scripts/readme_commands.py README.md
"""
import sys


def quickstart_commands(text):
    """The commands of the first ```bash block after the "## Quick start" heading (a trailing `# comment` dropped)."""
    lines = text.splitlines()
    try:
        start = lines.index("## Quick start")
        begin = next(i for i in range(start, len(lines)) if lines[i].strip() == "```bash")
        end = next(i for i in range(begin + 1, len(lines)) if lines[i].strip() == "```")
    except (ValueError, StopIteration):
        raise SystemExit("error: the README has no '## Quick start' heading followed by a ```bash block") from None
    commands = [line.split(" #", 1)[0].strip() for line in lines[begin + 1:end]]
    return [c for c in commands if c and not c.startswith("#")]


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: python scripts/readme_commands.py README.md")
        sys.exit(0 if sys.argv[1:] in (["-h"], ["--help"]) else 2)
    try:
        with open(sys.argv[1]) as f:
            text = f.read()
    except OSError as e:
        raise SystemExit(f"error: cannot read {sys.argv[1]}: {e.strerror}") from None
    print("\n".join(quickstart_commands(text)))
