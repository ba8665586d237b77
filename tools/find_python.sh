#!/bin/sh
# Prints the command of a Python interpreter to create the project's venvs with, or stops with one
# line saying what it found and what to install.
#
#   tools/find_python.sh            pick one from PATH
#   tools/find_python.sh PYTHON     check that one (make PYTHON=...)
#
# The lock (requirements.lock) covers Python 3.11 and newer, and is checked on 3.11, 3.12 and 3.13
# (tests/test_lock_platforms.py). From PATH, `python3` comes first when it is one of those: it is
# the Python the user's shell means; else the newest of python3.13, python3.12, python3.11; else
# `python3` if it is newer still (the lock allows it, its wheels are not checked there).
set -u

CANDIDATES="python3 python3.13 python3.12 python3.11"
WANTED="install Python 3.11-3.13 or run make PYTHON=/path/to/python3.11"

# The "major.minor.micro" version of interpreter $1, or nothing when it does not run.
version_of() {
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

# Whether version $1 lies in [3.$2, 3.$3] (minor versions, bounds included).
minor_between() {
    major=${1%%.*}
    rest=${1#*.}
    minor=${rest%%.*}
    [ "$major" = 3 ] && [ "$minor" -ge "$2" ] && [ "$minor" -le "$3" ]
}

# The first candidate on PATH whose version lies in [3.$1, 3.$2].
first_between() {
    for name in $CANDIDATES; do
        command -v "$name" > /dev/null 2>&1 || continue
        version=$(version_of "$name") || continue
        if minor_between "$version" "$1" "$2"; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

# "python3 3.10.13, python3.12 (does not run)": what PATH offers, for the error line.
found_on_path() {
    found=""
    for name in $CANDIDATES; do
        command -v "$name" > /dev/null 2>&1 || continue
        version=$(version_of "$name") || version="(does not run)"
        found="${found:+$found, }$name $version"
    done
    echo "${found:-none of $CANDIDATES on PATH}"
}

if [ $# -gt 0 ] && [ -n "$1" ]; then
    version=$(version_of "$1") || { echo "no usable Python: PYTHON=$1 does not run; $WANTED" >&2; exit 1; }
    minor_between "$version" 11 999 || {
        echo "no usable Python: PYTHON=$1 is $version (need 3.11 or newer); $WANTED" >&2; exit 1; }
    echo "$1"
    exit 0
fi
first_between 11 13 || first_between 14 999 || {
    echo "no usable Python: found $(found_on_path) (need 3.11 or newer); $WANTED" >&2; exit 1; }
