"""The Musrenbang Kelurahan as tests drive it over RPC: open the forum, verify and score
proposals, hold and rank it, forward what it ranked.

Each step takes an open client (``with proposals(f.operator()) as op``) of the
kelurahan's staff, so a test can interleave its own calls between the steps.
"""

from services.proposals.domain import DEFAULT_CRITERIA
from tests import factories as f

CRITERIA = tuple(c["code"] for c in DEFAULT_CRITERIA)


def open_forum(op, year=2027):
    """Schedule the kelurahan's forum of ``year`` and adopt the default criteria; its id."""
    forum = op.schedule_forum(
        year=year, date=f"{year}-01-19", theme=f"Musrenbang {year}", place="Aula"
    )
    op.set_criteria(forum_id=forum["id"])
    return forum["id"]


def verify_and_score(op, proposal_id, scores=4):
    """Verify a submitted proposal and score it: ``scores`` is one score (1-5) for every
    default criterion, or a dict by criterion code."""
    if isinstance(scores, int):
        scores = dict.fromkeys(CRITERIA, scores)
    op.verify(proposal_id=proposal_id, note="lokasi dicek")
    return op.score(proposal_id=proposal_id, scores=scores)


def hold_and_rank(op, forum_id):
    """Record that the forum was held and rank its scored proposals by total (the
    service's default ranking); the ranked forum."""
    op.record_forum(
        forum_id=forum_id,
        held_on=forum_id[-4:] + "-01-19",
        attendance=87,
        berita_acara=f"files/ba-musrenbang-{forum_id[-4:]}.pdf",
        delegates=[{"delegate_id": "d-1", "rw": 7, "role": "ketua RW"}],
    )
    return op.rank_forum(forum_id=forum_id)


def forward_ranked(op, forum):
    """Forward every proposal of a ranked forum at its rank."""
    for entry in forum["ranking"]:
        op.forward(proposal_id=entry["proposal_id"], rank=entry["rank"], forum_id=forum["id"])


def forwarded(client, submissions=None, kelurahan=f.PENGASINAN, year=2027):
    """Take proposals through a kelurahan's whole forum cycle and forward them.

    ``client`` is the ``proposals`` fixture (or a kelurahan node's client factory);
    ``submissions`` is a list of ``(payload, scores)``, each payload a submit payload
    whose proposer is an RT of the kelurahan (default: one ``factories.proposal()``
    scored 4). Returns the proposals' ids in submission order.
    """
    if submissions is None:
        submissions = [(f.proposal(year=year), 4)]
    ids = []
    for payload, _ in submissions:
        proposer = payload["proposer"]
        user = f"u-rt-{proposer['rw']}-{proposer['rt']}"
        chair = f.actor("ketua_rt", user, kelurahan, rw=proposer["rw"], rt=proposer["rt"])
        with client(chair) as rt:
            ids.append(rt.submit(**payload)["id"])
    with client(f.actor("operator", kelurahan=kelurahan)) as op:
        forum_id = open_forum(op, year)
        for pid, (_, scores) in zip(ids, submissions, strict=True):
            verify_and_score(op, pid, scores)
        forward_ranked(op, hold_and_rank(op, forum_id))
    return ids
