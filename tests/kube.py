"""Rendering the kustomize overlays for the deploy tests, with the tools the install steps bring."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))

Doc = dict[str, Any]


def missing(what: str, install: str = "make setup-system install") -> None:
    """A missing tool fails in CI (the install steps bring it) and skips elsewhere."""
    message = f"{what} is not installed: run `{install}`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def kustomize() -> list[str]:
    """kubectl's kustomize, else the standalone one `make validators` builds."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    standalone = ROOT / ".cache" / "tools" / "bin" / "kustomize"
    if standalone.exists():
        return [str(standalone), "build"]
    missing("kubectl (or kustomize)", "make validators")
    raise AssertionError  # unreachable: missing() raises


def render(folder: Path) -> list[Doc]:
    """Every document kustomize renders for `folder` (an overlay or a component's host)."""
    rendered = subprocess.run(  # noqa: S603  (fixed argv: kustomize on one of our folders)
        [*kustomize(), str(folder)], capture_output=True, text=True, check=False, timeout=120
    )
    assert rendered.returncode == 0, f"{folder.name} does not render: {rendered.stderr}"
    return [d for d in yaml.safe_load_all(rendered.stdout) if d]


def overlay(name: str) -> list[Doc]:
    return render(K8S / "overlays" / name)
