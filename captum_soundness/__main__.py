"""``python -m captum_soundness``: the command line (see :mod:`captum_soundness.benchmark`)."""

from captum_soundness.benchmark._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
