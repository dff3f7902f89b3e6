from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import (
    CursorQuery,
    IdPath,
    IdQuery,
    LimitQuery,
    NowDep,
    UnitOfWorkDep,
)
from dispatch.errors import problem_responses
from dispatch.jobs import service as jobs
from dispatch.jobs.schemas import JobPublic
from dispatch.schemas import Page, decode_id_cursor, id_page
from dispatch.sla import policies, service, states
from dispatch.sla.models import Audience, PolicyName, SlaCheckpoint
from dispatch.sla.schemas import (
    Acknowledgement,
    AtRiskPublic,
    EscalationPublic,
    PauseCreate,
    SlaPolicyPublic,
    SlaPolicyUpdate,
)

router = APIRouter(prefix="/v1/sla", tags=["sla"], responses=problem_responses(400, 401, 403, 413, 422))
job_sla_router = APIRouter(
    prefix="/v1/jobs/{job_id}/sla", tags=["sla"], responses=problem_responses(400, 401, 403, 404, 409, 413, 422)
)
Staff = Depends(allow(Role.dispatcher, Role.supervisor))


@router.get("/policies", response_model=list[SlaPolicyPublic], dependencies=[Staff])
async def list_sla_policies(uow: UnitOfWorkDep) -> list[SlaPolicyPublic]:
    return await uow.run(
        lambda session: [
            SlaPolicyPublic.model_validate(p, from_attributes=True) for p in policies.all_policies(session)
        ]
    )


@router.put(
    "/policies/{name}",
    response_model=SlaPolicyPublic,
    dependencies=[Depends(allow())],
    responses=problem_responses(404),
)
async def update_sla_policy(
    name: PolicyName,
    body: SlaPolicyUpdate,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow())],
) -> SlaPolicyPublic:
    """Change a policy's targets. Jobs already received keep the deadlines they were given."""
    changes = body.model_dump(mode="json")
    changes["warnings"] = sorted(changes["warnings"], key=lambda w: w["ratio"])
    return await uow.run(
        lambda session: SlaPolicyPublic.model_validate(
            policies.update(session, name, changes, actor=caller.actor, now=now), from_attributes=True
        )
    )


@router.get("/at-risk", response_model=Page[AtRiskPublic])
async def list_at_risk_jobs(
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher, Role.supervisor, Role.technician, Role.outlet))],
    breached_only: bool = False,
    technician_id: IdQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[AtRiskPublic]:
    """Open jobs at risk or breached: emergencies first, then the nearest deadline (the most
    overdue first), with time left (negative when late) and why."""

    def work(session: Session) -> Page[AtRiskPublic]:
        rows, next_cursor = service.at_risk(
            session=session,
            caller=caller,
            now=now,
            limit=limit,
            cursor=cursor,
            breached_only=breached_only,
            technician_id=technician_id,
        )
        items = []
        for row in rows:
            job = row.job
            sla = jobs.sla_public(job, now)
            items.append(
                AtRiskPublic(
                    job_id=job.id,
                    status=job.status,
                    priority=job.priority,
                    policy=job.sla_policy,
                    technician_id=job.technician_id,
                    customer_name=job.customer_name,
                    customer_address=job.customer_address,
                    state="breached" if sla.state is states.SlaState.breached else "at_risk",
                    deadline=sla.next_deadline or "completion",
                    due_at=job.next_due_at,
                    time_left_seconds=sla.time_left_seconds,
                    reasons=row.reasons,
                    paused_since=job.paused_at,
                )
            )
        return Page[AtRiskPublic](items=items, next_cursor=next_cursor)

    return await uow.run(work)


def _escalation(checkpoint: SlaCheckpoint) -> EscalationPublic:
    return EscalationPublic(
        id=checkpoint.id,
        job_id=checkpoint.job_id,
        deadline=checkpoint.deadline,
        level=checkpoint.level,
        notify=checkpoint.audience,
        fires_at=checkpoint.fires_at,
        fired_at=checkpoint.fired_at,
        acknowledged_at=checkpoint.acknowledged_at,
        acknowledged_by=checkpoint.acknowledged_by,
    )


@router.get("/escalations", response_model=Page[EscalationPublic], dependencies=[Staff])
async def list_escalations(
    uow: UnitOfWorkDep,
    notify: Annotated[Audience, Query(description="Whose queue")] = Audience.supervisor,
    include_acknowledged: bool = False,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[EscalationPublic]:
    """What the watcher raised for someone to act on, oldest first: breaches go to supervisors,
    at-risk and no-shows to dispatchers."""
    after_id = decode_id_cursor(cursor)
    return await uow.run(
        lambda session: id_page(
            EscalationPublic,
            service.escalations(
                session=session,
                audience=notify,
                limit=limit + 1,
                after_id=after_id,
                include_acknowledged=include_acknowledged,
            ),
            limit,
            _escalation,
        )
    )


@router.post(
    "/escalations/{escalation_id}/acknowledge",
    response_model=EscalationPublic,
    dependencies=[Staff],
    responses=problem_responses(404, 409),
)
async def acknowledge_escalation(
    escalation_id: IdPath,
    body: Acknowledgement,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher, Role.supervisor))],
) -> EscalationPublic:
    return await uow.run(
        lambda session: _escalation(
            service.acknowledge(session=session, checkpoint_id=escalation_id, caller=caller, now=now, note=body.note)
        )
    )


@job_sla_router.post("/pause", response_model=JobPublic)
async def pause_job_sla(
    job_id: IdPath,
    body: PauseCreate,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher, Role.supervisor))],
) -> JobPublic:
    """Stop the SLA clock for a reason the job's policy allows; the deadlines move on by the
    paused time when it resumes (or when the technician next reports on the job)."""
    return await uow.run(
        lambda session: jobs.to_public(
            service.pause(session=session, job_id=job_id, reason=body.reason, note=body.note, caller=caller, now=now),
            now,
        )
    )


@job_sla_router.post("/resume", response_model=JobPublic)
async def resume_job_sla(
    job_id: IdPath,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher, Role.supervisor))],
) -> JobPublic:
    return await uow.run(
        lambda session: jobs.to_public(service.resume(session=session, job_id=job_id, caller=caller, now=now), now)
    )
