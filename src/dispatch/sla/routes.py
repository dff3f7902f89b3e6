from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import IdPath, IdQuery, NowDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.jobs import service as jobs
from dispatch.jobs.schemas import JobPublic
from dispatch.paging import CursorQuery, LimitQuery, Page
from dispatch.sla import policies, public, service
from dispatch.sla.models import Audience, PolicyName
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
    return await uow.run(
        lambda session: SlaPolicyPublic.model_validate(
            policies.update(session, name, body.model_dump(mode="json"), actor=caller.actor, now=now),
            from_attributes=True,
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
    return await uow.run(
        lambda session: service.at_risk(
            session=session,
            caller=caller,
            now=now,
            limit=limit,
            cursor=cursor,
            breached_only=breached_only,
            technician_id=technician_id,
        ).page(AtRiskPublic, lambda row: public.at_risk(row, now))
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
    return await uow.run(
        lambda session: service.escalations(
            session=session,
            audience=notify,
            limit=limit,
            cursor=cursor,
            include_acknowledged=include_acknowledged,
        ).page(EscalationPublic, public.escalation)
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
        lambda session: public.escalation(
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
