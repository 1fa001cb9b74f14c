"""The robot's side of models by content over ROS: a learner's ``fetch_model`` service
(f2p_interfaces/FetchModel) as the chunk source of ``f2p_common.model_transfer.ModelCache``."""
from __future__ import annotations

from typing import Callable

from f2p_common.model_transfer import ChunkSource, ModelChunk, TransferError
from f2p_interfaces.srv import FetchModel
from f2p_ros.conversions import model_chunk_from_response
from f2p_ros.nodes import wait_for


def chunk_source(node, client, timeout: float, stop: Callable[[], bool] = lambda: False, asks: int = 3
                 ) -> ChunkSource:
    """``get_chunk(sha256, offset, max_bytes)`` over ``client`` (a FetchModel client of ``node``,
    whose executor must spin it from another thread): TransferError (``not_found``) when no server
    is there, it answers none of ``asks`` requests within ``timeout`` s each (a request is asked
    again: one sent while DDS still matches a restarted server's reply path can go unanswered), or
    it has no such model; ``stop()`` turning true ends the wait."""
    where = node.resolve_service_name(client.srv_name)

    def get_chunk(sha: str, offset: int, max_bytes: int) -> ModelChunk:
        for _ in range(asks):
            if not client.wait_for_service(timeout_sec=min(5.0, timeout)):
                raise TransferError(f"no model source on {where} (the learner's fetch_model; remap it)", "not_found")
            future = client.call_async(FetchModel.Request(sha256=sha, offset=offset, max_bytes=max_bytes))
            try:
                resp = wait_for(future, timeout, stop)
                break
            except (TimeoutError, InterruptedError) as exc:
                client.remove_pending_request(future)
                if isinstance(exc, InterruptedError):
                    raise TransferError(f"{where} at byte {offset}: stopped", "not_found") from None
        else:
            raise TransferError(f"{where} at byte {offset}: no answer to {asks} requests of {timeout:g} s",
                                "not_found")
        if not resp.success:
            raise TransferError(f"{where}: {resp.message}", "not_found")
        return model_chunk_from_response(resp)
    return get_chunk
