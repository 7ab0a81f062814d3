"""Batching: requests for the same servable and signature are concatenated along dimension 0."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np

from ebgan_tf.serving.errors import ServingError, invalid
from ebgan_tf.serving.server_config import BatchingOptions


@dataclasses.dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    rows: int
    enqueued: float
    future: concurrent.futures.Future


@dataclasses.dataclass
class _Queue:
    run: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    tasks: collections.deque = dataclasses.field(default_factory=collections.deque)
    rows: int = 0


class Batcher:
    """TF Serving's shared batch scheduler, in short: one queue per (servable, signature, input shapes), served by
    `num_batch_threads` threads. A batch closes when it reaches `max_batch_size` rows or when its oldest request
    has waited `batch_timeout_micros`."""

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._queues: dict[Any, _Queue] = {}
        self._condition = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{index}", daemon=True)
            for index in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        key: Any,
        run: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]],
        inputs: Mapping[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """Queues one request (every input with the same dimension 0) and waits for its share of the outputs."""
        sizes = {name: array.shape[0] for name, array in inputs.items()}
        if len(set(sizes.values())) != 1:
            raise invalid(f"Batching needs every input to have the same size in dimension 0; got {sizes}.")
        rows = next(iter(sizes.values()))
        if rows > self.options.max_batch_size:
            raise invalid(f"Task size {rows} is larger than maximum batch size {self.options.max_batch_size}.")
        task = _Task(inputs, rows, time.monotonic(), concurrent.futures.Future())
        full_key = (key, tuple(sorted((name, array.shape[1:]) for name, array in inputs.items())))
        with self._condition:
            if self._closed:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The server is shutting down.")
            queue = self._queues.setdefault(full_key, _Queue(run))
            if queue.rows + rows > self.options.max_enqueued_batches * self.options.max_batch_size:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue to which this task was submitted is full."
                )
            queue.tasks.append(task)
            queue.rows += rows
            self._condition.notify()
        return task.future.result()

    def stop(self, timeout: float | None = None) -> None:
        """Refuses new requests and runs the queued ones; after `timeout` seconds (None = no limit) the requests
        still queued fail with UNAVAILABLE. A batch already running cannot be interrupted and is not waited for."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._condition:
            for queue in self._queues.values():
                for task in queue.tasks:
                    task.future.set_exception(
                        ServingError(grpc.StatusCode.UNAVAILABLE, "The server shut down before this request ran.")
                    )
            self._queues.clear()

    def _work(self) -> None:
        while True:
            with self._condition:
                batch = self._next_batch()
                while batch is None:
                    if self._closed:
                        return
                    self._condition.wait(self._seconds_to_next_deadline())
                    batch = self._next_batch()
            self._run(*batch)

    def _next_batch(self):
        """Pops a ready batch (full, timed out, or closing) from the queue with the oldest request; else None."""
        now, timeout = time.monotonic(), self.options.batch_timeout_micros / 1e6
        ready = [
            (queue.tasks[0].enqueued, key)
            for key, queue in self._queues.items()
            if queue.rows >= self.options.max_batch_size or now - queue.tasks[0].enqueued >= timeout or self._closed
        ]
        if not ready:
            return None
        key = min(ready, key=lambda item: item[0])[1]
        queue, tasks, rows = self._queues[key], [], 0
        while queue.tasks and rows + queue.tasks[0].rows <= self.options.max_batch_size:
            tasks.append(queue.tasks.popleft())
            rows += tasks[-1].rows
        queue.rows -= rows
        if not queue.tasks:
            del self._queues[key]
        return queue.run, tasks

    def _seconds_to_next_deadline(self) -> float | None:
        if not self._queues:
            return None
        oldest = min(queue.tasks[0].enqueued for queue in self._queues.values())
        return max(0.0, oldest + self.options.batch_timeout_micros / 1e6 - time.monotonic())

    def _padded_size(self, rows: int) -> int:
        return next((size for size in self.options.allowed_batch_sizes if size >= rows), rows)

    def _run(self, run, tasks: list[_Task]) -> None:
        """Runs one batch and hands each task its rows; if the batch fails, each task runs alone."""
        rows = sum(task.rows for task in tasks)
        padding = self._padded_size(rows) - rows
        try:
            outputs = run(
                {
                    name: np.concatenate(
                        [task.inputs[name] for task in tasks] + [np.repeat(tasks[0].inputs[name][:1], padding, axis=0)]
                    )
                    for name in tasks[0].inputs
                }
            )
            wrong = {name: value.shape for name, value in outputs.items() if value.shape[:1] != (rows + padding,)}
            if wrong:
                raise ServingError(grpc.StatusCode.INTERNAL, f"Batched outputs lost the batch dimension: {wrong}.")
        except Exception as error:  # pylint: disable=broad-except  (handed to the waiting request)
            if len(tasks) > 1:
                for task in tasks:
                    self._run(run, [task])
            else:
                tasks[0].future.set_exception(error)
            return
        start = 0
        for task in tasks:
            task.future.set_result({name: value[start : start + task.rows] for name, value in outputs.items()})
            start += task.rows
