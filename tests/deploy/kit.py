"""The deployment kit's files, and the kit's nginx site run for real in a temporary prefix."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme
import yaml

from tests.processes import ROOT
from tests.server.live import stop_group

DEPLOY = ROOT / "deploy"
NGINX_SITE = DEPLOY / "nginx" / "cloudops.conf"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
SYSTEMD = DEPLOY / "systemd"
DASHBOARD = DEPLOY / "grafana" / "cloudops.json"


def kubernetes_documents() -> list[tuple[str, dict]]:
    """(file name, document) for every manifest of the Kustomize base."""
    return [
        (path.name, document)
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def manifest(kind: str, name: str) -> dict:
    found = [doc for _, doc in kubernetes_documents() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} manifests"
    return found[0]


def nginx_upstream_ports() -> list[int]:
    return [int(port) for port in re.findall(r"(?m)^\s*server 127\.0\.0\.1:(\d+)\b", NGINX_SITE.read_text())]


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path
    ca: Path

    def context(self) -> ssl.SSLContext:
        """A client context trusting the test CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls(folder: Path) -> Tls:
    """A test CA and a certificate for 127.0.0.1 / localhost (chain in one PEM file)."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    tls = Tls(folder / "cert.pem", folder / "key.pem", folder / "ca.pem")
    ca.cert_pem.write_to_path(str(tls.ca))
    issued.private_key_pem.write_to_path(str(tls.key))
    tls.cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    return tls


def substitute(text: str, pattern: str, replacement: str) -> str:
    """re.sub that insists the pattern is there: the test must follow changes to the kit."""
    result, count = re.subn(pattern, replacement, text)
    assert count, f"the kit's nginx site no longer has {pattern!r}"
    return result


def site_with_test_certificate(tls: Tls) -> str:
    """The site as shipped, with the test certificate in place of certbot's paths."""
    text = substitute(NGINX_SITE.read_text(), r"ssl_certificate /etc/letsencrypt/\S+;", f"ssl_certificate {tls.cert};")
    return substitute(text, r"ssl_certificate_key /etc/letsencrypt/\S+;", f"ssl_certificate_key {tls.key};")


def site_on_loopback(tls: Tls, *, https_port: int, http_port: int, upstream: int) -> str:
    """The site listening on free loopback ports, its upstream one test server."""
    text = site_with_test_certificate(tls)
    # Test machines may have no IPv6.
    text = substitute(text, r"(?m)^\s*listen \[::\]:\d+[^;]*;\n", "")
    text = substitute(text, r"listen 443 ", f"listen 127.0.0.1:{https_port} ")
    text = substitute(text, r"listen 80;", f"listen 127.0.0.1:{http_port};")
    return substitute(
        text,
        r"(?m)(^\s*server 127\.0\.0\.1:\d+ [^;]*;\n)+",
        f"    server 127.0.0.1:{upstream} max_fails=3 fail_timeout=10s;\n",
    )


MAIN_CONF = """\
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
# One process running as the invoking user, in the foreground: no user switch, no daemon.
master_process off;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/cloudops.conf;
}}
"""


def write_nginx_conf(prefix: Path, site: str) -> Path:
    """A minimal nginx.conf whose every path is in `prefix`, including `site`."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "cloudops.conf").write_text(site)
    conf = prefix / "nginx.conf"
    conf.write_text(MAIN_CONF.format(prefix=prefix))
    return conf


def nginx_argv(nginx: str, conf: Path) -> list[str]:
    prefix = conf.parent
    return [nginx, "-c", str(conf), "-p", f"{prefix}/", "-e", str(prefix / "error.log")]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx did not listen on {port} within {timeout}s")


@contextmanager
def running_nginx(nginx: str, conf: Path, https_port: int) -> Iterator[str]:
    """Run nginx on `conf`; yield its HTTPS base URL; stop it after."""
    log = conf.parent / "error.log"
    argv = nginx_argv(nginx, conf)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(https_port, proc, log)
        yield f"https://127.0.0.1:{https_port}"
    finally:
        stop_group(proc)  # the master and its workers


def nginx_blocks(text: str) -> list[tuple[str, dict[str, list[str]]]]:
    """Every `{ ... }` block of an nginx config: (its header, {directive: [arguments]}).

    Enough for the kit's site (no quotes holding braces or semicolons); a directive given twice
    in one block keeps the last one, as the checks below want the effective value.
    """
    text = re.sub(r"#[^\n]*", "", text)
    blocks: list[tuple[str, dict[str, list[str]]]] = []
    stack: list[tuple[str, dict[str, list[str]]]] = []
    statement = ""
    for char in text:
        if char == "{":
            stack.append((" ".join(statement.split()), {}))
            statement = ""
        elif char == "}":
            blocks.append(stack.pop())
        elif char == ";":
            name, *args = statement.split()
            stack[-1][1][name] = args
            statement = ""
        else:
            statement += char
    return blocks


def nginx_location(header: str) -> dict[str, list[str]]:
    found = [directives for name, directives in nginx_blocks(NGINX_SITE.read_text()) if name == header]
    assert len(found) == 1, f"{header!r}: {len(found)} blocks"
    return found[0]


def manage_py_command(argv: list[str]) -> tuple[str, dict]:
    """Parse `python manage.py <command> ...` with the command's own parser, as Django would:
    (the command's name, its parsed options). Fails on an unknown command or option."""
    from django.core.management import get_commands, load_command_class

    assert argv[:2] in (["python", "manage.py"], ["manage.py"]) or argv[0].endswith("/python"), argv
    args = argv[argv.index("manage.py") + 1 :]
    name, rest = args[0], args[1:]
    assert name in get_commands(), f"no manage.py command {name!r}"
    command = load_command_class(get_commands()[name], name)
    options = vars(command.create_parser("manage.py", name).parse_args(rest))
    return name, options
