# Shared by scripts/run and scripts/test (POSIX sh, sourced): make sure .venv exists and holds the
# project and its dev tools. Reinstalls only when pyproject.toml changed since the last install.

PYTHON="${PYTHON:-python3}"

ensure_venv() {
    if [ ! -x .venv/bin/python ]; then
        if ! command -v "$PYTHON" >/dev/null 2>&1; then
            echo "error: $PYTHON not found; install Python 3.11 or newer (or set PYTHON=/path/to/python3.11)" >&2
            exit 1
        fi
        if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "error: $("$PYTHON" --version 2>&1) is too old; Python 3.11 or newer is needed (set PYTHON=...)" >&2
            exit 1
        fi
        echo "creating .venv with $("$PYTHON" --version 2>&1)" >&2
        if ! "$PYTHON" -m venv .venv; then
            echo "error: could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
            rm -rf .venv
            exit 1
        fi
    fi
    stamp=.venv/.installed-from-pyproject
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
        echo "installing the project and its dependencies into .venv (pip install -e '.[dev]')" >&2
        .venv/bin/python -m pip install --disable-pip-version-check --quiet --upgrade pip
        .venv/bin/python -m pip install --disable-pip-version-check --quiet -e '.[dev]'
        touch "$stamp"
    elif core_changed_since "$stamp"; then
        # The matching core is compiled with mypyc at install time (setup.py): rebuild it after an edit, or it
        # would run from source (correct, but about half as fast).
        echo "rebuilding the compiled matching core (pip install -e . --no-deps)" >&2
        .venv/bin/python -m pip install --disable-pip-version-check --quiet --no-deps -e .
        touch "$stamp"
    fi
}

core_changed_since() {
    [ -n "$(find exchange -name '*.py' -newer "$1" 2>/dev/null | head -n 1)" ]
}
