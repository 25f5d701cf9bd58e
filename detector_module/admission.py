"""Who gets the next inference slot when every slot is busy: the cameras take turns.

One detector serves every camera of a train. A plain FIFO queue lets the camera that posts
most often (a higher ``detect_fps``, a client without backoff) fill the queue, so the others
wait longest exactly when the detector is overloaded. Here, a freed slot goes to the waiting
camera that was served longest ago, and each camera holds at most one waiting request: a
newer frame replaces its older one (which is answered 503 ``busy`` at once, as it is stale
anyway). That is the camera's own newest-frame-wins rule, applied in the detector too.

Requests without a ``camera_id`` (the Web API, Custom Vision clients) share one turn among
themselves and queue in order, since each of them is an answer a client waits for. A camera
id seen for the first time counts as just served, so a client cannot jump the queue by
inventing ids; the turns remembered are bounded (:data:`MAX_REMEMBERED`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from itertools import islice

MAX_REMEMBERED = 1024  # camera ids whose last turn is kept; the oldest idle ones are forgotten


class Superseded(Exception):
    """A newer request of the same camera took this one's place in the queue."""


class Admission:
    """Bounded concurrent inferences (limit from the live settings), shared by camera."""

    def __init__(self) -> None:
        self.busy = 0
        self._limit = 1
        self._turn = 0
        self._served: OrderedDict[str | None, int] = OrderedDict()
        self._waiting: dict[str | None, deque[asyncio.Future[bool]]] = {}

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @property
    def remembered(self) -> int:
        return len(self._served)

    async def acquire(self, camera: str | None, limit: int, wait_s: float) -> bool:
        """True once a slot is this request's; False after ``wait_s`` without one.
        Raises :class:`Superseded` when a newer request of ``camera`` replaces it."""
        self._limit = limit
        self._remember(camera)
        if self.busy < limit and not self._waiting:
            self._grant(camera)
            return True
        ticket: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(camera, deque())
        if camera is not None:
            for older in queue:
                if not older.done():
                    older.set_exception(Superseded())
            queue.clear()
        queue.append(ticket)
        self._dispatch()
        try:
            return await asyncio.wait_for(asyncio.shield(ticket), wait_s)
        except TimeoutError:
            return self._withdraw(ticket)
        except asyncio.CancelledError:  # the client went away
            if self._withdraw(ticket):
                self.release()
            raise

    def release(self) -> None:
        self.busy -= 1
        self._dispatch()

    def _withdraw(self, ticket: asyncio.Future[bool]) -> bool:
        """Take a ticket back; True when a slot was granted to it meanwhile."""
        if ticket.done():
            return ticket.exception() is None and ticket.result()
        ticket.cancel()
        return False

    def _remember(self, camera: str | None) -> None:
        if camera in self._served:
            return
        self._served[camera] = self._turn
        excess = len(self._served) - MAX_REMEMBERED
        if excess > 0:
            # Cameras waiting, and this one, keep their turn: the dispatcher orders by it.
            idle = (c for c in self._served if c not in self._waiting and c != camera)
            for forgotten in list(islice(idle, excess)):
                del self._served[forgotten]

    def _grant(self, camera: str | None) -> None:
        self.busy += 1
        self._turn += 1
        self._served[camera] = self._turn
        self._served.move_to_end(camera)

    def _dispatch(self) -> None:
        """Hand free slots to the waiting cameras, longest unserved first."""
        while self.busy < self._limit and self._waiting:
            camera = min(self._waiting, key=self._served.__getitem__)
            queue = self._waiting[camera]
            ticket = queue.popleft()
            if not queue:
                del self._waiting[camera]
            if ticket.done():  # withdrawn or superseded
                continue
            self._grant(camera)
            ticket.set_result(True)
