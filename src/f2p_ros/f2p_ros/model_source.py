"""The robot's side of models by content over ROS: a learner's ``fetch_model`` service
(f2p_interfaces/FetchModel) as the chunk source of ``f2p_common.model_transfer.ModelCache``."""
from __future__ import annotations

import time
from typing import Callable

from f2p_common.model_transfer import ChunkSource, ModelChunk, TransferError
from f2p_interfaces.srv import FetchModel
from f2p_ros.conversions import model_chunk_from_response
from f2p_ros.nodes import wait_for


def chunk_source(node, client, timeout: float, stop: Callable[[], bool] = lambda: False, ask_again_s: float = 2.0
                 ) -> ChunkSource:
    """``get_chunk(sha256, offset, max_bytes)`` over ``client`` (a FetchModel client of ``node``,
    whose executor must spin it from another thread): TransferError (``not_found``) when no server
    is there, none answers within ``timeout`` s, or it has no such model; ``stop()`` turning true
    ends the wait. A request unanswered after ``ask_again_s`` is asked again (a chunk request is
    idempotent): Fast DDS drops a reply when the server has not yet matched a new client's reply
    reader ("client will not receive response"), which a fresh or restarted party meets."""
    where = node.resolve_service_name(client.srv_name)

    def get_chunk(sha: str, offset: int, max_bytes: int) -> ModelChunk:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransferError(f"{where} at byte {offset}: no answer within {timeout:g} s", "not_found")
            if not client.wait_for_service(timeout_sec=min(5.0, left)):
                raise TransferError(f"no model source on {where} (the learner's fetch_model; remap it)", "not_found")
            future = client.call_async(FetchModel.Request(sha256=sha, offset=offset, max_bytes=max_bytes))
            try:
                resp = wait_for(future, min(ask_again_s, max(left, 0.01)), stop)
                break
            except InterruptedError:
                client.remove_pending_request(future)
                raise TransferError(f"{where} at byte {offset}: stopped", "not_found") from None
            except TimeoutError:
                client.remove_pending_request(future)
        if not resp.success:
            raise TransferError(f"{where}: {resp.message}", "not_found")
        return model_chunk_from_response(resp)
    return get_chunk
