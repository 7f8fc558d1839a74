"""Input images of a submitted graph: a `load_image` node's `key` may be given as the workspace's own
file key (an output's `key`), a `data:image/...;base64,` URI, or a link to a file of the same workspace
(`/files/...` or a signed storage URL). Anything but an existing key of this workspace goes through the
guide-image path (`studio.guide_images`: verified, re-encoded as a metadata-free PNG, stored
content-addressed), and the graph that is queued carries only keys."""
from __future__ import annotations

import copy
from typing import Any

from rest_framework.exceptions import ValidationError

from accounts.models import Workspace
from gpu_workers.artifacts import InvalidArtifactKey, belongs_to_workspace, check_key

from ..engine import StorageArtifactStore
from ..guide_images import store_guide_image

IMAGE_INPUTS = {"load_image": "key"}  # node type -> the port that names its file


def _message(exc: ValidationError) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        detail = next(iter(detail.values()), "")
    if isinstance(detail, list):
        detail = detail[0] if detail else ""
    return str(detail)


def _is_own_key(value: str, workspace: Workspace) -> bool:
    try:
        check_key(value)
    except InvalidArtifactKey:
        return False
    return belongs_to_workspace(value, str(workspace.pk))


def bring_in_images(graph: Any, *, workspace: Workspace) -> tuple[Any, list[dict[str, Any]]]:
    """(the graph with every input image stored and named by key, problems in the validation format).

    The graph is returned unchanged when it is not shaped like one; validation then says why."""
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if not isinstance(nodes, dict):
        return graph, []
    resolved = copy.deepcopy(graph)
    problems: list[dict[str, Any]] = []
    store = StorageArtifactStore()
    for node_id, node in resolved["nodes"].items():
        port = IMAGE_INPUTS.get(node.get("type")) if isinstance(node, dict) else None
        inputs = node.get("inputs") if port else None
        value = inputs.get(port) if isinstance(inputs, dict) else None
        if not isinstance(value, str) or not value.strip():
            continue  # an edge, a missing input or a wrong type: validation reports those
        value = value.strip()
        if _is_own_key(value, workspace):
            if not store.exists(value):
                problems.append({"node": node_id, "port": port, "code": "unknown_file",
                                 "message": f'Node "{node_id}" input "{port}": no file {value!r} in this '
                                            "workspace. Use the `key` of one of its outputs or uploads, a "
                                            "data:image/...;base64 URI, or a link to one of its files."})
            continue
        try:
            stored = store_guide_image(workspace=workspace, value=value)
        except ValidationError as exc:
            problems.append({"node": node_id, "port": port, "code": "invalid_image",
                             "message": f'Node "{node_id}" input "{port}": {_message(exc)}'})
            continue
        if stored is not None:
            inputs[port] = stored["key"]
    return resolved, problems
