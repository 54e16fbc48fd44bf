"""`ovseg` (the console script) and `python -m ovseg`: the command line, with Ctrl-C exiting 130
even while it imports (the first ~0.5 s; `ovseg._edge.Group` takes over once click runs)."""
import sys


def run() -> None:
    try:
        from ovseg.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    run()
