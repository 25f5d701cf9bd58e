"""Settings of the clip viewer: where the clips are and how the page is served.

A small model like ``config/*.py`` so the defaults are documented in one place. The viewer is
a tool an operator starts by hand, not an IoT Edge module, so its settings come from the
command line and the environment, never from a twin.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import SecretStr

from config.fields import Section, setting
from contracts.blob_layout import API_VERSION, CONTAINER

CONNECTION_ENV = "GRAFFITI_VIEWER_CONNECTION_STRING"
# The uploader's variable, so a machine set up for the uploader needs nothing more.
FALLBACK_CONNECTION_ENV = "UPLOADER_UPLOAD__CONNECTION_STRING"
TOKEN_ENV = "GRAFFITI_VIEWER_TOKEN"
MIN_TOKEN_LENGTH = 16


class ViewerSettings(Section):
    """Everything the viewer needs; secrets are ``SecretStr`` so they never print."""

    connection_string: SecretStr | None = setting(
        None, f"Storage connection string of the Blob on Edge module or the cloud account; "
        f"from {CONNECTION_ENV}, else {FALLBACK_CONNECTION_ENV}. Never logged.",
    )
    container: str = setting(
        CONTAINER, "Container the uploader writes to (its default).",
        min_length=3, max_length=63, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
    )
    api_version: str = setting(
        API_VERSION, "Storage API version; Blob Storage on IoT Edge refuses newer ones, the "
        "cloud accepts it too.", pattern=r"^\d{4}-\d{2}-\d{2}$",
    )
    timeout_s: float = setting(10.0, "Timeout of one storage request; an endpoint that does "
                               "not answer is reported as unavailable (503).", unit="s", gt=0,
                               le=300)
    host: str = setting("127.0.0.1", "Address the page is served on; anything but loopback "
                        "needs a token.")
    port: int = setting(8090, "TCP port of the page.", ge=0, le=65535)
    token: SecretStr | None = setting(
        None, f"Access token (from {TOKEN_ENV} or --token-file), at least {MIN_TOKEN_LENGTH} "
        "characters. None: no authentication, allowed on loopback only.",
    )
    allowed_hosts: list[str] = setting(
        [], "Names the viewer is reached by through a reverse proxy: accepted in the Host "
        "header besides loopback ones (localhost, 127.0.0.1, ::1) while serving on a loopback "
        "address, and as the Origin of writes when the proxy rewrites the Host. Any other "
        "name is refused (421): that is how a page on a name that resolves to 127.0.0.1 (DNS "
        "rebinding) is kept out.",
    )
    page_size: int = setting(50, "Clips per page of the list.", ge=1, le=500)
    index_ttl_s: float = setting(
        30.0, "How long the list of train/camera/day folders is reused before it is listed "
        "again; new days appear after at most this long (new clips in a known day at once).",
        unit="s", ge=0,
    )

    def problems(self) -> list[str]:
        """Reasons not to start: missing connection string, open bind without a token."""
        found = []
        if self.connection_string is None or not self.connection_string.get_secret_value():
            found.append(f"no storage connection string: set {CONNECTION_ENV} (or "
                         f"{FALLBACK_CONNECTION_ENV})")
        token = self.token.get_secret_value() if self.token else ""
        if token and len(token) < MIN_TOKEN_LENGTH:
            found.append(f"the access token is shorter than {MIN_TOKEN_LENGTH} characters")
        if not token and not is_loopback(self.host):
            found.append(f"refusing to serve on {self.host} without an access token: set "
                         f"{TOKEN_ENV} or --token-file, or bind to 127.0.0.1")
        return found


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connection_string_from_env(env: dict[str, str] | None = None) -> str | None:
    """The viewer's connection string variable, else the uploader's."""
    env = dict(os.environ) if env is None else env
    return env.get(CONNECTION_ENV) or env.get(FALLBACK_CONNECTION_ENV) or None


def read_token(token_file: Path | None, env: dict[str, str] | None = None) -> str | None:
    """The token from ``token_file`` (first line, stripped) or the environment."""
    if token_file is not None:
        return token_file.read_text(encoding="utf-8").strip() or None
    env = dict(os.environ) if env is None else env
    return env.get(TOKEN_ENV) or None
