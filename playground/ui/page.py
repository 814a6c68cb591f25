"""What every part of the page shares, and who is acting.

The parts of the page (columns, prompt area, session bar, evidence panels) are
built and wired by their own modules; they meet here: the run service (the only
shared, server-wide object they use), the page notice, the run on screen and
the owner id kept in the browser. Nothing per user lives in a module global:
the run shown is a gr.State, the owner id a gr.BrowserState.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import gradio as gr

from playground.catalog import Catalog
from playground.config import Settings
from playground.service import RunService

# The owner id lives in the browser's localStorage under a fixed key, so it survives a server restart.
# Gradio encrypts BrowserState with a secret that it sends to the page in its config, so the secret
# protects nothing: a fixed one only keeps old values readable after a restart. What makes the id
# safe is its 128 random bits (nobody can guess another browser's id), and the shape check below.
OWNER_STORAGE_KEY = "playground-owner"
OWNER_STORAGE_SECRET = "playground-owner-v1"
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")


def new_browser_id() -> str:
    """A fresh owner id for a browser seen for the first time (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


def valid_browser_id(value: object) -> bool:
    """Only ids of our own shape: never a short name like "api" that another owner uses."""
    return isinstance(value, str) and _BROWSER_ID.fullmatch(value) is not None


def login_name(request: gr.Request | None) -> str:
    """The user logged in under --auth ('' without auth)."""
    return str(getattr(request, "username", None) or "") if request is not None else ""


def owner_of(request: gr.Request | None, browser_id: object) -> str:
    """Who is acting: the login name under --auth, else this browser's random id.

    A request that comes before the page stored its id (the very first moments of a first visit)
    acts as its tab: its runs stay reachable through their links.
    """
    name = login_name(request)
    if name:
        return name
    if valid_browser_id(browser_id):
        return str(browser_id)
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"tab-{session or 'anonymous'}"


def tab_key(request: gr.Request | None) -> str:
    """The key of this browser tab's run in progress (what Stop cancels)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"tab-{session or 'anonymous'}"


@dataclass
class Shell:
    """The service and the components that every part of the page reads or updates."""

    service: RunService
    settings: Settings
    notice: gr.HTML
    owner: gr.BrowserState
    shown: gr.State  # the Run on screen, as an object: every panel draws from it

    @property
    def catalog(self) -> Catalog:
        return self.service.catalog


def build_shell(service: RunService) -> Shell:
    """The shared components; call inside the Blocks, where the notice should appear."""
    return Shell(
        service=service,
        settings=service.settings,
        notice=gr.HTML(elem_id="notice", padding=False),
        owner=gr.BrowserState("", storage_key=OWNER_STORAGE_KEY, secret=OWNER_STORAGE_SECRET),
        shown=gr.State(None),
    )
