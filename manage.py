#!/usr/bin/env python
"""Django's command-line utility for the knowledge platform."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    # platform/ is a source root holding the Django project package (knowledge_platform).
    # It has no __init__.py and is never imported itself, so `import platform` keeps
    # resolving to the standard library (tests/test_stdlib_platform.py proves it).
    sys.path.insert(0, str(ROOT / "platform"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "knowledge_platform.settings.development")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
