"""A bare gRPC server answering SubmitJob with no work behind it: the ceiling for the broker."""

from __future__ import annotations

import asyncio
import itertools
import sys

import grpc

from computenet.v1 import job_service_pb2 as pb
from computenet.v1 import job_service_pb2_grpc as pb_grpc
from computenet.v1 import types_pb2


class EchoJobs(pb_grpc.JobServiceServicer):
    """Parses each submission and returns a job built from it, storing nothing."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitJobResponse:
        job = types_pb2.Job(
            job_id=f"job-{next(self._ids)}",
            spec=request.spec,
            state=types_pb2.JOB_STATE_PENDING,
            request_id=request.request_id,
        )
        return pb.SubmitJobResponse(job=job)


async def main() -> None:
    server = grpc.aio.server()
    pb_grpc.add_JobServiceServicer_to_server(EchoJobs(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
