"""Use cases of rotation: rotate one add-on now, rotate what is due, rotate every add-on
matching a filter (the incident case), and record a failed rotation. ``rotation`` rotates.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from securekey.domain.plans import parse_plan
from securekey.exceptions import ValidationError
from securekey.services.rotation import (
    BulkRotation,
    Rotated,
    RotationBatch,
    RotationFailure,
    RotationRun,
    failure_event,
    rotate_all,
    rotate_locked,
)
from securekey.services.unit_of_work import UseCases, plausible

__all__ = ["MAX_ROTATION_BATCH", "ROTATION_BATCH", "RotationUseCases"]

#: Add-ons rotated per transaction unless told otherwise (``bench/rotate_due.py`` measures it).
ROTATION_BATCH = 200
#: The most add-ons one rotation transaction may hold.
MAX_ROTATION_BATCH = 1000


class RotationUseCases(UseCases):
    """Rotations by hand, by schedule and in bulk."""

    def rotate(
        self, addon_ref: str, *, emergency: bool = False, actor: str = "operator"
    ) -> Rotated:
        """Rotate now; ``emergency`` replaces both keys (a leaked key stops working at once)."""
        with self._uow(actor=actor) as uow:
            addon = uow.addon(addon_ref, lock=True)
            run = RotationRun(self._fp, actor, uow.now, emergency=emergency)
            (rotated,) = rotate_all(uow.tx, [addon], run)
            return rotated

    def rotate_due(
        self,
        now: datetime,
        *,
        limit: int = 1,
        exclude: Iterable[str] = (),
        actor: str = "scheduler",
    ) -> RotationBatch:
        """Claim up to ``limit`` due add-ons (skipping any another process holds) and rotate
        them in one transaction; one that fails is rolled back alone and audited as failed.

        One attached to an app another transaction holds is left due for a later batch, so
        concurrent schedulers never queue behind each other."""
        with self._uow(actor=actor, now=now) as uow:
            addons = uow.tx.claim_due(now, frozenset(exclude), max(1, limit))
            if not addons:
                return RotationBatch()
            return rotate_locked(uow.tx, addons, RotationRun(self._fp, actor, now, skip_busy=True))

    def rotate_matching(
        self,
        *,
        all_: bool = False,
        plan: object = None,
        app: object = None,
        emergency: bool = False,
        actor: str = "operator",
        batch_size: int = ROTATION_BATCH,
        limit: int | None = None,
        after: object = None,
        dry_run: bool = False,
    ) -> BulkRotation:
        """Rotate now every add-on matching one filter: ``all_``, a ``plan``, or an ``app``
        (add-ons billed to or attached to it) — the incident case.

        Add-ons go in id order, ``batch_size`` per transaction; ``limit`` stops after that
        many and ``next_after`` says where to go on (``after``). ``dry_run`` only counts.
        """
        plan_name = _check_filter(all_, plan, app, batch_size, limit, after)
        cursor: str | None = after if isinstance(after, str) else None
        with self._uow(write=False) as uow:
            app_id = uow.app(app).id if isinstance(app, str) else None
            result = BulkRotation(uow.tx.count_addons(after=cursor, plan=plan_name, app_id=app_id))
        if dry_run:
            return result
        done = 0
        while limit is None or done < limit:
            size = batch_size if limit is None else min(batch_size, limit - done)
            with self._uow(actor=actor) as uow:
                tx = uow.tx
                addons = tx.lock_addons(after=cursor, limit=size, plan=plan_name, app_id=app_id)
                run = RotationRun(self._fp, actor, uow.now, emergency=emergency)
                batch = rotate_locked(tx, addons, run)
            result.rotated += len(batch.rotated)
            result.releases += sum(len(r.releases) for r in batch.rotated)
            result.failed += batch.failed
            done += len(addons)
            if len(addons) < size:
                cursor = None
                break
            cursor = addons[-1].id
        result.next_after = cursor
        return result

    def has_due(self, now: datetime) -> bool:
        """Whether any add-on is due at ``now`` (a cheap indexed read)."""
        with self._uow(write=False) as uow:
            return uow.tx.has_due(now)

    def record_failure(self, addon_id: str, reason: str, *, actor: str = "scheduler") -> None:
        """Put a failed rotation in the audit log (the add-on itself stays unchanged)."""
        with self._uow(actor=actor) as uow:
            addon = uow.tx.get_addon(addon_id)
            name = addon.name if addon else addon_id
            failure = RotationFailure(addon_id, name, reason)
            uow.tx.add_event(failure_event(failure, actor, uow.now))


def _check_filter(
    all_: object, plan: object, app: object, batch_size: object, limit: object, after: object
) -> str | None:
    """Refuse a bulk rotation's bad filter or paging before anything is read; the plan's name."""
    chosen = [n for n, v in (("all", all_), ("plan", plan), ("app", app)) if v not in (None, False)]
    if all_ not in (True, False) or len(chosen) != 1:
        raise ValidationError("filter", "Give exactly one filter: all (true), a plan, or an app.")
    plan_name = None if plan is None else parse_plan(plan).name
    for name, value, top in (
        ("batch_size", batch_size, MAX_ROTATION_BATCH),
        ("limit", limit, None),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(name, f"{name} must be a whole number of at least 1.")
        if top is not None and value > top:
            raise ValidationError(name, f"{name} must be at most {top}.")
    if after is not None and not (isinstance(after, str) and plausible(after)):
        raise ValidationError("after", "after must be an add-on id from a previous answer.")
    if app is not None and not isinstance(app, str):
        raise ValidationError("app", "app must be an app name or id.")
    return plan_name
