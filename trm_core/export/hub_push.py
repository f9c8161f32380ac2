"""``trm-tui export model --push OWNER/NAME``: the written model folder uploaded to a Hugging Face model repository
through ``huggingface_hub`` (the repository made when it does not exist; the token from its usual places:
``HF_TOKEN``, ``hf auth login``). The folder stays on disk whatever happens, and every failure says what to do."""

from __future__ import annotations

import re
from pathlib import Path

from trm_core.config import ConfigError

_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")


def check_repo(repo: str) -> None:
    """Before anything is written: a name the hub takes, and a token to push with."""
    if not _REPO.match(repo):
        raise ConfigError(f"--push {repo}: expected OWNER/NAME, a Hugging Face model repository")
    from huggingface_hub import get_token

    if not get_token():
        raise ConfigError(f"--push {repo}: no Hugging Face token (log in with `hf auth login`, or set HF_TOKEN)")


def push_folder(folder: Path, repo: str, message: str) -> str:
    """Upload ``folder`` as one commit; the repository's URL."""
    from huggingface_hub import HfApi, constants, errors

    later = f"the model folder is written at {folder}; upload it later with: hf upload {repo} {folder}"
    api = HfApi()
    try:
        url = api.create_repo(repo, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model", commit_message=message)
    except errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        why = {401: "the token was refused (hf auth login, or HF_TOKEN)",
               403: "the token may not write to that repository"}.get(status, f"the hub answered {exc}")
        raise ConfigError(f"--push {repo}: {why}; {later}") from None
    except OSError as exc:  # no network, a refused connection, DNS
        raise ConfigError(f"--push {repo}: cannot reach {constants.ENDPOINT} ({exc}); {later}") from None
    except Exception as exc:  # httpx's transport errors are not OSErrors
        if type(exc).__module__.startswith(("httpx", "httpcore", "requests", "urllib3")):
            raise ConfigError(f"--push {repo}: cannot reach {constants.ENDPOINT} ({type(exc).__name__}); "
                              f"{later}") from None
        raise
    return str(url)
