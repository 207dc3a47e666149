"""nnsam2_download_checkpoint against an HTTP server on 127.0.0.1 that serves an official-format
SAM2.1 tiny checkpoint built by sam2's builder (``official_tiny``): success, interrupted and
resumed, truncated, another size or version under the name, an HTML page, a file already there.
No test reaches any other address: connections elsewhere are refused (``only_loopback``)."""
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nnsam2.cli import download_checkpoint as cli
from nnsam2.network.sam2_weights import CheckpointError
from nnsam2.training import sam2_download
from nnsam2.training.run_settings import MissingCheckpointError, resolve
from nnsam2.training.sam2_download import download_checkpoint
from nnsam2.utils.download import DownloadInterrupted
from nnsam2.utils.nnunet_env import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                   "ALL_PROXY")


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch):
    """Every connection this module's code opens goes to 127.0.0.1, directly; the hosts anything
    tried to reach elsewhere are listed (and refused)."""
    refused, connect = [], socket.create_connection

    def create_connection(address, *args, **kwargs):
        if address[0] not in LOOPBACK:
            refused.append(address[0])
            raise ConnectionRefusedError(f"test guard: no connection to {address[0]}")
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    for var in PROXY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    return refused


class Server(ThreadingHTTPServer):
    """Serves ``files`` (name -> bytes) at ``url``; ``cut_after``: the next answer stops after that
    many bytes of a full-length promise; ``ranges``: answer Range requests with 206; ``html``:
    answer everything with an HTML error page and status 200. ``requests``: (path, Range)."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.requests = {}, []
        self.cut_after, self.ranges, self.html = None, True, False
        self.url = f"http://127.0.0.1:{self.server_address[1]}/mirror"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if server.html:
            return self._answer(200, b"<html><body>Access denied</body></html>", "text/html")
        data = server.files.get(self.path.rsplit("/", 1)[-1])
        if data is None:
            return self._answer(404, b"not found", "text/plain")
        start = int(self.headers["Range"][6:].split("-")[0]) if (
            server.ranges and self.headers.get("Range")) else 0
        headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
        body, cut = data[start:], server.cut_after
        server.cut_after = None
        self._answer(206 if start else 200, body, "application/octet-stream", headers, cut)

    def _answer(self, status, body, content_type, headers=None, cut=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])  # then the connection closes

    def log_message(self, *args):
        pass


@pytest.fixture
def server(official_tiny):
    srv = Server()
    srv.files["sam2.1_hiera_tiny.pt"] = official_tiny[0].read_bytes()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def fetch(server, folder, size="tiny", version="2.1", **kwargs):
    return download_checkpoint(size, version, str(folder), base_url=server.url, progress=False,
                               timeout=10, **kwargs)


def test_download_verifies_and_puts_the_file_in_place(server, tmp_path, official_tiny):
    path = fetch(server, tmp_path)
    assert path == str(tmp_path / "sam2.1_hiera_tiny.pt")
    assert (tmp_path / "sam2.1_hiera_tiny.pt").read_bytes() == official_tiny[0].read_bytes()
    assert os.listdir(tmp_path) == ["sam2.1_hiera_tiny.pt"]  # no .part left
    assert server.requests == [("/mirror/sam2.1_hiera_tiny.pt", None)]


@pytest.mark.parametrize("ranges", [True, False], ids=["resumed", "restarted"])
def test_interrupted_download_keeps_its_part_and_the_next_call_finishes_it(server, tmp_path,
                                                                          official_tiny, ranges):
    data, cut = server.files["sam2.1_hiera_tiny.pt"], 5_000_000
    server.cut_after, server.ranges = cut, ranges
    with pytest.raises(DownloadInterrupted, match=r"interrupted after 5\.0 of .*\.part is kept: "
                                                  r"run the same command again to resume"):
        fetch(server, tmp_path)
    assert os.listdir(tmp_path) == ["sam2.1_hiera_tiny.pt.part"]
    assert (tmp_path / "sam2.1_hiera_tiny.pt.part").stat().st_size == cut
    fetch(server, tmp_path)
    assert server.requests[1][1] == f"bytes={cut}-"  # the second request asked for the rest
    assert (tmp_path / "sam2.1_hiera_tiny.pt").read_bytes() == data  # 206 appended, 200 restarted
    assert os.listdir(tmp_path) == ["sam2.1_hiera_tiny.pt"]


def test_truncated_file_is_refused_and_nothing_is_left(server, tmp_path):
    server.files["sam2.1_hiera_tiny.pt"] = server.files["sam2.1_hiera_tiny.pt"][:20_000_000]
    with pytest.raises(CheckpointError, match="cannot be read .*truncated.*nothing was kept") as e:
        fetch(server, tmp_path)
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("size, version, name", [("small", "2.1", "sam2.1_hiera_small.pt"),
                                                 ("tiny", "2", "sam2_hiera_tiny.pt")],
                         ids=["another-size", "another-version"])
def test_checkpoint_under_another_name_is_refused(server, tmp_path, size, version, name):
    server.files[name] = server.files["sam2.1_hiera_tiny.pt"]
    with pytest.raises(CheckpointError, match=f"is not {name}, perhaps a checkpoint of another "
                                              f"SAM2 size or version .*(missing|unexpected).*; "
                                              f"nothing was kept") as e:
        fetch(server, tmp_path, size, version)
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []


def test_html_page_instead_of_the_file_is_refused(server, tmp_path):
    server.html = True
    with pytest.raises(UsageError, match="answered with an HTML page.*nothing was written"):
        fetch(server, tmp_path)
    assert os.listdir(tmp_path) == []


def test_missing_file_on_the_mirror_is_one_line(server, tmp_path):
    with pytest.raises(UsageError, match=r"/mirror/sam2.1_hiera_large.pt: HTTP 404"):
        fetch(server, tmp_path, "large")
    assert os.listdir(tmp_path) == []


def test_verified_file_stays_and_a_damaged_one_needs_force(server, tmp_path, caplog):
    fetch(server, tmp_path)
    with caplog.at_level(logging.INFO, logger="nnsam2.training.sam2_download"):
        fetch(server, tmp_path)
    assert len(server.requests) == 1 and "already there and verified" in caplog.text
    target = tmp_path / "sam2.1_hiera_tiny.pt"
    target.write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="left as it is: download again with --force"):
        fetch(server, tmp_path)
    assert target.read_bytes() == b"damaged"
    fetch(server, tmp_path, force=True)
    assert target.read_bytes() == server.files["sam2.1_hiera_tiny.pt"]


def test_command_downloads_into_the_checkpoint_dir(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("nnSAM2_checkpoint_dir", str(tmp_path / "sam2"))
    cli.main(["tiny", "--base-url", server.url + "/"])
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "sam2" / "sam2.1_hiera_tiny.pt")
    assert resolve("tiny").checkpoint == str(tmp_path / "sam2" / "sam2.1_hiera_tiny.pt")
    server.html = True
    with pytest.raises(SystemExit) as e:
        cli.main(["small", "--base-url", server.url])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (after any log lines)
    assert e.value.code == 1 and last.startswith("nnsam2_download_checkpoint: error: http://")
    assert last.endswith("not the file; nothing was written")  # the whole message, one line


def test_default_address_is_sam2s_and_nothing_else_is_reached(tmp_path, only_loopback):
    assert sam2_download.checkpoint_url("large", "2") == (
        "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt")
    with pytest.raises(UsageError, match="cannot download https://dl.fbaipublicfiles.com/"
                                         "segment_anything_2/092824/sam2.1_hiera_tiny.pt"):
        download_checkpoint("tiny", folder=str(tmp_path), progress=False)
    assert only_loopback == ["dl.fbaipublicfiles.com"] and os.listdir(tmp_path) == []


def test_training_without_a_checkpoint_names_the_command(monkeypatch):
    monkeypatch.delenv("nnSAM2_checkpoint_dir", raising=False)
    with pytest.raises(MissingCheckpointError, match="nnsam2_download_checkpoint tiny downloads it"):
        resolve("tiny")
    with pytest.raises(UsageError, match="no official SAM2 checkpoint of size 'toy'"):
        sam2_download.checkpoint_name("toy")
