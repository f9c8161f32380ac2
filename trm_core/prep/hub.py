"""The source CSVs of Sudoku-Extreme and Maze-Hard from the Hugging Face hub, as the reference's builders fetch
them: through ``huggingface_hub``, the hub's own client, so its cache (``HF_HUB_CACHE``, ``HF_HOME``), its
offline switch (``HF_HUB_OFFLINE=1``), its mirror (``HF_ENDPOINT``) and its token work as they do everywhere
else. A file already in the cache is not downloaded again; one that cannot be had is a ``ConfigError`` that says
why and what to do, never a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from trm_core.config import ConfigError

SUDOKU_REPO = "sapientinc/sudoku-extreme"  # the reference's build_sudoku_dataset.py source_repo
MAZE_REPO = "sapientinc/maze-30x30-hard-1k"  # and build_maze_dataset.py's
SPLIT_FILES = ("train.csv", "test.csv")
METADATA_TIMEOUT_S = 5.0  # the hub's answer about a file (its ETag) before its bytes; a live hub answers in well under 1 s


@dataclass(frozen=True)
class HubSources:
    repo: str
    train: Path
    test: Path


def fetch_sources(repo: str, revision: str | None = None) -> HubSources:
    """``train.csv`` and ``test.csv`` of the dataset repository ``repo``, downloaded into (or found in) the hub's
    cache; the hub client draws its own progress bars on stderr."""
    paths = [download(repo, name, revision, "dataset", "download the CSVs yourself and give --csv and --test-csv")
             for name in SPLIT_FILES]
    return HubSources(repo, *paths)


def download(repo: str, filename: str, revision: str | None, repo_type: str, instead: str) -> Path:
    """One file of a hub repository (``repo_type`` "dataset" or "model"), from the hub's cache or the network;
    every failure a ``ConfigError`` that says why, ``instead`` naming what the user can do without the hub."""
    try:
        from huggingface_hub import constants, errors, hf_hub_download
    except ImportError:
        raise ConfigError(f"hub files need the huggingface_hub package (pip install huggingface_hub); or "
                          f"{instead}") from None

    kind = "dataset" if repo_type == "dataset" else "model"
    where = f"{filename} of the {kind} {repo} on the Hugging Face hub"
    if not constants.HF_HUB_OFFLINE:  # a hub that never answers would otherwise be minutes of silence
        print(f"trm-tui: asking {constants.ENDPOINT} for {filename} of {repo} (HF_HUB_OFFLINE=1 answers from the "
              f"hub cache alone, without the network)", file=sys.stderr, flush=True)
    try:
        return Path(hf_hub_download(repo, filename, repo_type=repo_type, revision=revision,
                                    etag_timeout=METADATA_TIMEOUT_S))
    except errors.HFValidationError as exc:  # a name the hub's client refuses (a path climbing out, a bad id)
        raise ConfigError(f"{where}: not a repository name or file the hub accepts ({str(exc).splitlines()[0]})") \
            from None
    except errors.GatedRepoError:
        raise ConfigError(f"{where}: the {kind} is gated; accept its terms on the hub and log in (hf auth login, "
                          f"or HF_TOKEN)") from None
    except errors.RepositoryNotFoundError:
        raise ConfigError(f"{where}: no such {kind} at {constants.ENDPOINT} (check the name; a private one "
                          f"needs HF_TOKEN)") from None
    except errors.RevisionNotFoundError:
        raise ConfigError(f"{where}: no revision {revision!r}") from None
    except errors.EntryNotFoundError as exc:
        if not isinstance(exc, errors.LocalEntryNotFoundError):
            raise ConfigError(f"{where}: the {kind} has no such file") from None
        if constants.HF_HUB_OFFLINE:
            raise ConfigError(f"{where}: not in the hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is "
                              f"set; fetch it on a machine with a network, or unset HF_HUB_OFFLINE") from None
        raise ConfigError(f"{where}: cannot reach {constants.ENDPOINT} and the file is not in the hub cache "
                          f"({constants.HF_HUB_CACHE}); check the network (or HF_ENDPOINT for a mirror), or "
                          f"{instead}") from None
    except errors.HfHubHTTPError as exc:
        raise ConfigError(f"{where}: the hub answered {exc}") from None
    except OSError as exc:  # the cache's disk: full, read-only, no permission
        raise ConfigError(f"{where}: cannot write the hub cache ({constants.HF_HUB_CACHE}): {exc}") from None
