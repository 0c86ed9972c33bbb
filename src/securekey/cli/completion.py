"""Shell completion: command names with colons in bash, and app / add-on names from the server.

bash splits words at ``:`` (it is in ``COMP_WORDBREAKS``), so ``addons:cr<TAB>`` reached typer's
script as three words and completed nothing. Our bash script rebuilds the words from the
command line itself and strips what bash keeps before the last colon, as bash-completion's
``__ltrim_colon_completions`` does. Names come from the server, cached for a few seconds in
``$XDG_CACHE_HOME/securekey`` (names only, never tokens or keys).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import typer._completion_classes
import typer._completion_shared

from securekey.cli.errors import CliError
from securekey.cli.session import resolve

__all__ = ["BASH_SCRIPT", "CACHE_SECONDS", "complete_addons", "complete_apps", "install"]

#: How long names fetched from the server are reused (a burst of TABs asks once).
CACHE_SECONDS = 30.0

# A %-template (typer fills the names): "%%" is a literal "%".
BASH_SCRIPT = """
%(complete_func)s() {
    local IFS=$'\\n'
    # Words from the line itself: bash's COMP_WORDS are split at ':' too.
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words
    IFS=$' \\t\\n' read -r -a words <<< "$line"
    [[ $line =~ [[:space:]]$ ]] && words+=("")
    local cword=$(( ${#words[@]} - 1 ))
    local cur=${words[cword]}
    COMPREPLY=( $( env COMP_WORDS="${words[*]}" \\
                   COMP_CWORD=$cword \\
                   %(autocomplete_var)s=complete_bash $1 ) )
    # bash replaces only what follows the last ':' of the word: drop the part it keeps.
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local keep=${cur%%"${cur##*:}"}
        local i
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]=${COMPREPLY[i]#"$keep"}
        done
    fi
    return 0
}

complete -o default -F %(complete_func)s %(prog_name)s
"""


def install() -> None:
    """Make typer's ``--install-completion`` and ``--show-completion`` use our bash script."""
    # typer keeps the template in two places (one for showing, one for completing).
    typer._completion_shared._completion_scripts["bash"] = BASH_SCRIPT
    typer._completion_classes.BashComplete.source_template = BASH_SCRIPT


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "securekey"


def _names(path: str) -> list[str]:
    """Names listed at ``path`` on the configured server; [] when it cannot be asked."""
    try:
        creds = resolve(os.environ)
    except CliError:
        return []
    if not creds.token:
        return []
    digest = hashlib.sha256(f"{creds.url}\n{creds.token}\n{path}".encode()).hexdigest()[:24]
    cache = _cache_dir() / f"names-{digest}.json"
    try:
        if time.time() - cache.stat().st_mtime < CACHE_SECONDS:
            cached = json.loads(cache.read_text())
            if isinstance(cached, list):
                return [str(n) for n in cached]
    except (OSError, ValueError):
        pass
    import httpx

    try:
        answer = httpx.get(
            creds.url.rstrip("/") + path,
            headers={
                "Authorization": f"Bearer {creds.token}",
                "Accept": "application/vnd.heroku+json; version=3",
            },
            timeout=2.0,
        )
        rows = answer.json() if answer.status_code in (200, 206) else []
    except (httpx.HTTPError, ValueError):
        return []
    names = sorted(str(r["name"]) for r in rows if isinstance(r, dict) and "name" in r)
    try:
        cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(cache, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(names, f)
    except OSError:
        pass
    return names


def complete_apps(incomplete: str) -> list[str]:
    """App names starting with ``incomplete``."""
    return [n for n in _names("/apps") if n.startswith(incomplete)]


def complete_addons(incomplete: str) -> list[str]:
    """Add-on names starting with ``incomplete``."""
    return [n for n in _names("/addons") if n.startswith(incomplete)]
