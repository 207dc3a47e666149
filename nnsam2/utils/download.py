"""Resumable HTTP(S) downloads into a ``.part`` file, with a progress bar.

What is kept after a failure: the ``.part`` file of a transfer that stopped part way (the
connection dropped, fewer bytes than ``Content-Length``, Ctrl-C), which the next call resumes with
an HTTP ``Range`` request. An unreachable server, an HTTP error or an HTML page in place of the
file writes nothing (a ``.part`` an earlier interrupted transfer left stays, to be resumed). The
caller checks the finished ``.part`` file and renames it into place (``os.replace``).
"""
import http.client
import logging
import os
import urllib.error
import urllib.request
from typing import Optional

from tqdm import tqdm

from nnsam2.utils.nnunet_env import UsageError
from nnsam2.utils.progress import show_progress

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
USER_AGENT = "nnsam2-download"


class DownloadInterrupted(UsageError):
    """A transfer that stopped part way; its ``.part`` file is kept for the next call to resume."""


def fetch(url: str, part: str, *, progress: Optional[bool] = None, timeout: float = 60.0) -> None:
    """Download ``url`` into the file ``part``, resuming from the bytes it already holds.

    Args:
        url: an ``http://`` or ``https://`` address.
        part: the partial file; resumed when the server answers a ``Range`` request with 206,
            started again when it answers 200 (it ignores ranges) or 416 (the range is past the end).
        progress: draw a progress bar; None: only when stderr is a terminal.
        timeout: seconds to wait for the server to connect or send the next bytes.

    Raises:
        UsageError: the server cannot be reached, answers an HTTP error or an HTML page
            (nothing is written).
        DownloadInterrupted: the transfer stopped part way (``part`` is kept).
    """
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{url}: only http:// and https:// addresses can be downloaded")
    for _ in range(2):  # a second time from byte 0 when the server refuses the resume's range
        response = _open(url, part, timeout)
        if response is not None:
            with response:
                if _receive(response, url, part, progress):
                    return
        if os.path.isfile(part):
            os.remove(part)
    raise UsageError(f"{url}: the server refuses ranged requests it said it supports")


def _size(path: str) -> int:
    return os.path.getsize(path) if os.path.isfile(path) else 0


def _open(url: str, part: str, timeout: float):
    """The server's response, from the end of ``part`` if it honours ranges; None: ``part``
    reaches past the end of the file (416), start again."""
    offset = _size(part)
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            return None
        raise UsageError(f"{url}: HTTP {e.code} {e.reason}{_kept(part)}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise UsageError(f"cannot download {url}: {reason}{_kept(part)}") from None


def _receive(response, url: str, part: str, progress: Optional[bool]) -> bool:
    """Write the answer into ``part``; False: a 206 for another range than asked (start again)."""
    if response.headers.get_content_type() == "text/html":
        raise UsageError(f"{url} answered with an HTML page (an error or login page?), not the "
                         f"file; nothing was written{_kept(part)}")
    offset = _size(part)
    resumed = response.status == 206
    if resumed and _range_start(response) != offset:
        return False
    if not resumed:
        offset = 0
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None else None
    if resumed:
        logger.info("resuming %s at %.1f MB", os.path.basename(part), offset / 1e6)
    with open(part, "ab" if resumed else "wb") as f, \
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=os.path.basename(url), disable=not (show_progress() if progress is None
                                                          else progress)) as bar:
        try:
            for data in iter(lambda: response.read(CHUNK_BYTES), b""):
                f.write(data)
                bar.update(len(data))
        except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
            f.flush()
            raise DownloadInterrupted(_interrupted(url, part, f.tell(), total, e)) from None
        f.flush()
        os.fsync(f.fileno())
        received = f.tell()
    if total is not None and received < total:
        raise DownloadInterrupted(_interrupted(url, part, received, total, "connection closed"))
    return True


def _range_start(response) -> Optional[int]:
    """The first byte of a 206 answer (``Content-Range: bytes START-END/TOTAL``)."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _interrupted(url: str, part: str, received: int, total: Optional[int], reason) -> str:
    of = f" of {total / 1e6:.1f}" if total is not None else ""
    return (f"download of {url} interrupted after {received / 1e6:.1f}{of} MB ({reason}); "
            f"{part} is kept: run the same command again to resume")


def _kept(part: str) -> str:
    return (f" ({part}, left by an earlier interrupted transfer, is kept to resume)"
            if os.path.isfile(part) else "")
