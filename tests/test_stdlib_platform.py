"""platform/ holds the Django project but must never shadow the standard library's `platform`
module, which Django, pytest and urllib3 import (DESIGN.md's trap)."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[1]
STDLIB = sysconfig.get_paths()["stdlib"]


def test_import_platform_is_the_standard_library_inside_the_django_process():
    import platform

    assert django.apps.apps.ready  # pytest-django has set Django up: this is the Django process
    assert platform.__file__.startswith(STDLIB)
    assert platform.system() == "Linux"
    assert platform.python_version() == ".".join(map(str, sys.version_info[:3]))


def test_import_platform_under_manage_py():
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "import platform; print(platform.__file__); print(platform.system())",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "knowledge_platform.settings.test"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    module_file, system = result.stdout.split()[-2:]
    assert module_file.startswith(STDLIB)
    assert system == "Linux"


def test_celery_app_imports_with_platform_on_the_path():
    """Workers run with PYTHONPATH=.:platform (the Dockerfile sets it); platform still resolves."""
    code = "import knowledge_platform, platform; print(knowledge_platform.celery_app.main, platform.system())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["knowledge_platform", "Linux"]
