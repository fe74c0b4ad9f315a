"""``make demo``: a Musrenbang day played against the nodes ``make run`` started.

Through the public RPC API only (a standalone ClusterRpcProxy per node vhost, each
call with a token signed with that node's secret, for a pseudonymous user), it
imports generated residents, has the RT and RW chairs of Pengasinan submit about
330 proposals (and Jatimakmur's a few), verifies them (some returned and revised,
a few rejected, duplicates merged), scores them against the forum's criteria,
holds and ranks the Musrenbang Kelurahan, forwards the top ones, has the camat
and bappeda decide at the city node, waits for the decisions to come back down
to the kelurahan, keeps the kelurahan's budget (a year, lines, an expense
recorded, approved and paid by three people, the lurah's out-of-pocket advance
and its reimbursement), shows who heard what from notify (the proposers; the
camat and bappeda at the city) and how many notifications each node's fake
SMS and WhatsApp gateways and mail sink received (make run's development
stand-ins: the contacts' phone numbers and emails are generated, and nothing
is sent to anyone), and prints the city's view.

Every command carries a command id derived from the kelurahan, the plan year,
the seed and the step, so a second run takes no effect twice: it finds what the
first one did and goes on. A step the nodes' state no longer allows (a forum
ranked before by someone else) is a Conflict, shown and passed over.

    python -m deploy.local.demo [--proposals 330] [--residents 3000]

``REMBUG_NAMESPACE`` (see deploy/local/node.py) and ``--kelurahan``/``--other``
point it at nodes other than ``make run``'s defaults (the tests do).
"""

import argparse
import concurrent.futures
import contextlib
import hashlib
import io
import logging
import os
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from bench import residents as generated_residents
from deploy.local import node
from deploy.local.call import token_for
from services.citizens.importer import read as read_residents
from shared import wilayah
from shared.config import CITY_CODE

ID_SPACE = uuid.UUID("5b0f3c7e-2d51-4c8e-9a57-6d656d6f7265")  # the demo's command ids
IMPORT_BATCH = 500
POLL = 0.5  # seconds between two looks while waiting for replication
NOTIFY_WAIT = 30  # seconds: notify tells only contacts it knew when the decision came
CITY_NOTICE_WAIT = 45  # seconds: a digest waits for its group to be quiet (make run: 5 s)
DELIVERY_WAIT = 30  # seconds for a node's messages to reach its fake providers
CENTRES = {"32.75.05.1002": (-6.283, 106.996), "32.75.08.1003": (-6.268, 106.927)}

# sector, target agency, title, problem, idea, unit, volume range, rupiah per unit
CATALOGUE = (
    ("pekerjaan_umum", "Dinas Bina Marga dan Sumber Daya Air", "Perbaikan saluran air",
     "Saluran tersumbat sedimen dan sampah, air meluap ke jalan setiap hujan deras",
     "Normalisasi saluran dan pemasangan penutup beton", "m", (40, 250), 650_000),
    ("pekerjaan_umum", "Dinas Bina Marga dan Sumber Daya Air", "Betonisasi jalan lingkungan",
     "Jalan lingkungan berlubang dan becek, sulit dilalui motor dan gerobak",
     "Pengecoran jalan lingkungan lebar 3 m", "m2", (60, 400), 420_000),
    ("pekerjaan_umum", "Dinas Bina Marga dan Sumber Daya Air", "Pembangunan turap kali",
     "Tanah bantaran kali longsor, mendekati rumah warga", "Turap batu kali di sisi kali",
     "m", (20, 120), 1_900_000),
    ("pekerjaan_umum", "Dinas Bina Marga dan Sumber Daya Air", "Perbaikan gorong-gorong",
     "Gorong-gorong patah sehingga air tergenang di persimpangan", "Ganti box culvert",
     "unit", (1, 4), 18_000_000),
    ("kesehatan", "Dinas Kesehatan", "Revitalisasi Posyandu",
     "Posyandu menumpang di teras rumah warga, alat timbang rusak",
     "Perbaikan ruang Posyandu dan alat antropometri", "paket", (1, 2), 35_000_000),
    ("kesehatan", "Dinas Kesehatan", "Pemberian makanan tambahan balita",
     "Ada balita dengan berat badan di bawah garis merah", "PMT lokal selama 90 hari",
     "paket", (20, 60), 450_000),
    ("pendidikan", "Dinas Pendidikan", "Renovasi ruang PAUD",
     "Atap ruang belajar PAUD bocor dan lantai retak", "Perbaikan atap dan lantai keramik",
     "m2", (30, 90), 1_500_000),
    ("pendidikan", "Dinas Perpustakaan dan Kearsipan", "Taman bacaan masyarakat",
     "Anak-anak tidak punya tempat membaca selepas sekolah", "Rak, buku dan tikar baca",
     "paket", (1, 2), 25_000_000),
    ("sosial", "Dinas Sosial", "Alat bantu bagi penyandang disabilitas",
     "Warga penyandang disabilitas belum memiliki kursi roda dan alat bantu dengar",
     "Pengadaan kursi roda dan alat bantu dengar", "unit", (3, 12), 2_800_000),
    ("sosial", "Dinas Sosial", "Pelatihan keterampilan lansia",
     "Lansia tinggal sendiri tanpa kegiatan dan penghasilan", "Pelatihan kerajinan 8 kali",
     "orang", (20, 40), 300_000),
    ("lingkungan_hidup", "Dinas Lingkungan Hidup", "Bank sampah RW",
     "Sampah rumah tangga dibuang ke kali dan lahan kosong", "Bangunan dan timbangan bank sampah",
     "paket", (1, 1), 45_000_000),
    ("lingkungan_hidup", "Dinas Lingkungan Hidup", "Tong sampah terpilah",
     "Tidak ada tempat sampah terpilah di fasilitas umum", "Tong sampah tiga warna",
     "unit", (10, 40), 750_000),
    ("perhubungan", "Dinas Perhubungan", "Penerangan jalan umum",
     "Jalan gelap di malam hari, rawan kecelakaan dan kejahatan", "Pemasangan lampu PJU LED",
     "titik", (4, 20), 7_500_000),
    ("perhubungan", "Dinas Perhubungan", "Rambu dan cermin tikungan",
     "Tikungan tajam tanpa rambu, sering terjadi tabrakan motor", "Rambu dan cermin cembung",
     "unit", (2, 6), 3_200_000),
    ("ekonomi", "Dinas Koperasi dan UMKM", "Pelatihan pemasaran daring UMKM",
     "Pelaku usaha mikro belum bisa berjualan daring", "Pelatihan dan pendampingan 3 bulan",
     "orang", (20, 50), 650_000),
    ("ketertiban", "Satuan Polisi Pamong Praja", "Pembangunan pos kamling",
     "Pos ronda rusak, warga berjaga tanpa tempat berteduh", "Pos kamling permanen 3x3 m",
     "unit", (1, 1), 28_000_000),
    ("ketertiban", "Dinas Komunikasi dan Informatika", "CCTV lingkungan",
     "Pencurian motor berulang di gang", "Kamera CCTV terhubung ke pos RW",
     "titik", (2, 8), 4_500_000),
    ("kependudukan", "Dinas Kependudukan dan Pencatatan Sipil", "Jemput bola KTP-el",
     "Lansia dan penyandang disabilitas sulit datang ke kantor Disdukcapil",
     "Layanan perekaman KTP-el keliling di RW", "kegiatan", (1, 3), 6_000_000),
)  # fmt: skip
RETURNS = (
    ("Rincian biaya belum ada; lampirkan RAB sederhana", "estimated_cost"),
    ("Lokasi belum jelas; lengkapi alamat dan titik koordinat", "location"),
    ("Volume tidak sesuai hasil survei lokasi", "volume"),
)
REJECTIONS = (
    ("wrong_agency", "Ruas jalan provinsi, bukan kewenangan Pemerintah Kota"),
    ("already_proposed", "Sudah diusulkan dan didanai pada Musrenbang tahun lalu"),
    ("wrong_address", "Lokasi di luar wilayah kelurahan"),
    ("other", "Lahan belum berstatus fasilitas umum; selesaikan serah terima dulu"),
)
CAMAT_REASONS = {
    "deferred": "Ditunda: menunggu kajian teknis dinas terkait",
    "rejected": "Ditolak: sudah tercakup program kecamatan tahun berjalan",
}
BAPPEDA_REASONS = {
    "deferred": "Ditunda ke RKPD tahun berikutnya: pagu indikatif bidang habis",
    "rejected": "Ditolak: tidak selaras dengan prioritas RPJMD",
}
# What the camat and bappeda decide on a proposal, by its forum rank (1 is the first entry):
# a function of the proposal alone, so a run again with other arguments (fewer forwarded,
# say) plans what the first run did, whose decisions its command ids keep.
KECAMATAN_PLAN = ("accepted",) * 4 + ("deferred", "accepted", "accepted", "rejected")
KECAMATAN_PLAN += ("accepted", "rejected")  # 7 of 10 accepted, every one of the first four
CITY_PLAN = ("funded", "funded", "deferred", "funded", "rejected", "funded", "accepted")
CITY_STATUS = {"accepted": "accepted_city", "funded": "funded"}


def planned(plan, rank):
    """The decision ``plan`` holds for the proposal at forum rank ``rank``."""
    return plan[(rank - 1) % len(plan)]


class Failed(Exception):
    """A stage could not finish: the demo stops with its message (exit code 1)."""


@dataclass(frozen=True)
class Who:
    """A caller: role, pseudonymous user id, and the scope of their token."""

    role: str
    user: str
    rw: int | None = None
    rt: int | None = None
    scope: str | None = None


class Node:
    """One node's RPC: a proxy per thread on the node's vhost; each call carries the
    token of its caller (signed with the node's secret, cached per caller)."""

    def __init__(self, code, timeout=30):
        self.code = code
        self.label = "the city" if code == CITY_CODE else wilayah.name_of(code)
        self.timeout = timeout
        self.config = None  # set with the first token (deploy.local.call.token_for)
        self._tokens, self._local, self._runners = {}, threading.local(), []
        self._lock = threading.Lock()

    def token(self, who):
        with self._lock:
            if who not in self._tokens:
                env, token = token_for(self.code, who.role, who.user, who.rw, who.rt, who.scope)
                self.config = {"AMQP_URI": env["AMQP_URI"]}
                self._tokens[who] = token
            return self._tokens[who]

    def call(self, who, method, **kwargs):
        token = self.token(who)
        runner = getattr(self._local, "runner", None)
        if runner is None:
            runner = ClusterRpcProxy(self.config, context_data={}, timeout=self.timeout)
            runner.start()
            self._local.runner = runner
            with self._lock:
                self._runners.append(runner)
        # the proxy sends its worker context's data with every call: the caller's token
        runner._worker_ctx.data["authorization"] = token
        service, _, name = method.partition(".")
        try:
            return getattr(getattr(runner._proxy, service), name)(**kwargs)
        except (RpcTimeout, UnknownService) as error:
            log = node.ROOT / "run" / node.NAMESPACE / self.code / f"{service}.log"
            raise Failed(
                f"{method} on {self.label} ({self.code}): {type(error).__name__} {error};"
                f" is `make run` still running? See {log.relative_to(node.ROOT)}"
            ) from None

    def close(self):
        for runner in self._runners:
            with contextlib.suppress(Exception):  # a connection already gone is closed
                runner.stop()


# -- output ------------------------------------------------------------------------------


class Show:
    """One line per stage with its counts and time; a progress count for long loops."""

    def __init__(self, stages, out=sys.stdout):
        self.stages, self.number, self.out = stages, 0, out
        self.tty = out.isatty()
        self._lock = threading.Lock()
        self.conflicts = []

    def stage(self, text, since):
        self.number += 1
        took = time.monotonic() - since
        print(f"[{self.number:2}/{self.stages}] {text} ({took:.1f} s)", file=self.out, flush=True)
        for message in self.conflicts:
            print(f"        passed over (Conflict): {message}", file=self.out, flush=True)
        self.conflicts = []

    def note(self, text):
        print(f"        {text}", file=self.out, flush=True)

    def progress(self, label, done, total):
        if self.tty:
            end = "\n" if done == total else ""
            print(f"\r        {label}: {done}/{total}", end=end, file=self.out, flush=True)
        elif done == total or done % max(1, total // 4) == 0:
            print(f"        {label}: {done}/{total}", file=self.out, flush=True)

    def conflict(self, message):
        with self._lock:
            if len(self.conflicts) < 5:
                self.conflicts.append(message)
            elif len(self.conflicts) == 5:
                self.conflicts.append("(more like these)")


def rupiah(amount):
    return f"Rp {amount:,}".replace(",", ".")


def tolerant(show, what, call, *args, **kwargs):
    """``call(...)``, or None when the nodes' state refuses it (a Conflict, shown)."""
    try:
        return call(*args, **kwargs)
    except RemoteError as error:
        if error.exc_type != "Conflict":
            raise
        show.conflict(f"{what}: {error.value}")
        return None


def each(pool, show, label, items, work):
    """``work(item)`` for every item on the pool's threads, with a progress count;
    the results in order (None for a Conflict passed over)."""
    items = list(items)
    if not items:
        return []
    futures = [pool.submit(tolerant, show, label, work, item) for item in items]
    results = []
    for done, future in enumerate(futures, start=1):
        results.append(future.result())
        if len(items) >= 20:
            show.progress(label, done, len(items))
    return results


def command_id(*parts):
    """A command id fixed by what the command is: the same on every run of the demo."""
    return str(uuid.uuid5(ID_SPACE, "/".join(map(str, parts))))


# -- the generated kelurahan -------------------------------------------------------------


@dataclass
class Proposal:
    index: int
    payload: dict
    proposer: Who
    kind: str = "plain"  # plain, return, reject, duplicate
    survivor: int | None = None  # a duplicate's original
    returned: tuple | None = None
    rejection: tuple | None = None
    marks: list = field(default_factory=list)  # 1-5, for the forum's criteria in order
    id: str | None = None


@dataclass
class Kelurahan:
    code: str
    proposals_wanted: int
    residents_wanted: int
    seed: int
    year: int
    node: Node = None
    proposals: list = field(default_factory=list)
    forwarded: list = field(default_factory=list)  # the forum's ranking entries forwarded
    decisions: dict = field(default_factory=dict)  # proposal id -> its status once decided
    residents_accepted: int = 0
    example: str | None = None  # a proposer's inbox, to show

    @property
    def name(self):
        return wilayah.name_of(self.code)

    @property
    def short(self):
        return self.code.replace(".", "")

    @property
    def kecamatan(self):
        return self.code.rsplit(".", 1)[0]

    @property
    def forum_id(self):
        return f"{self.code}-{self.year}"

    def who(self, role):
        return Who(role, f"u-{role}-{self.short}")

    def key(self, *parts):
        return command_id("rembug-demo", self.code, self.year, self.seed, *parts)


def generate_proposals(kel):
    """The kelurahan's proposals: the same for the same seed, whatever their number
    (each is drawn after the ones before it)."""
    rng = random.Random(f"{kel.seed}/{kel.code}/{kel.year}")
    centre = CENTRES.get(kel.code, (-6.25, 106.99))
    proposals = []
    for index in range(kel.proposals_wanted):
        draw = rng.random()
        originals = [p for p in proposals if p.kind == "plain" and p.proposer.role == "ketua_rt"]
        taken = {p.survivor for p in proposals if p.kind == "duplicate"}
        originals = [p for p in originals if p.index not in taken]
        if draw < 0.04 and originals:
            original = rng.choice(originals)
            rw = original.payload["location"]["rw"]
            payload = dict(original.payload, proposer={"level": "rw", "rw": rw})
            proposer = Who("ketua_rw", f"u-rw-{kel.short}-{rw:02d}", rw=rw)
            proposal = Proposal(index, payload, proposer, "duplicate", original.index)
        else:
            proposal = _new_proposal(rng, kel, index, centre)
            if draw < 0.12:
                proposal.kind, proposal.returned = "return", rng.choice(RETURNS)
            elif draw < 0.15:
                proposal.kind, proposal.rejection = "reject", rng.choice(REJECTIONS)
        proposal.marks = [min(5, max(1, round(rng.gauss(3.3, 1.0)))) for _ in range(5)]
        proposals.append(proposal)
    return proposals


def _new_proposal(rng, kel, index, centre):
    sector, agency, title, problem, idea, unit, volumes, price = rng.choice(CATALOGUE)
    rw, rt = rng.randrange(1, 19), rng.randrange(1, 11)
    volume = rng.randrange(volumes[0], volumes[1] + 1)
    cost = max(1_000_000, round(volume * price * rng.uniform(0.85, 1.2), -5))
    by_rw = rng.random() < 0.15
    street = rng.choice(generated_residents.STREETS)
    payload = {
        "year": kel.year,
        "title": f"{title} RT {rt:02d} RW {rw:02d}",
        "problem": problem,
        "idea": f"{idea} ({volume} {unit})",
        "sector": sector,
        "target_agency": agency,
        "proposer": {"level": "rw", "rw": rw} if by_rw else {"level": "rt", "rw": rw, "rt": rt},
        "location": {
            "rw": rw,
            "rt": rt,
            "address": f"Jl. {street} RT {rt:02d}/RW {rw:02d}",
            "latitude": round(centre[0] + rng.uniform(-0.01, 0.01), 5),
            "longitude": round(centre[1] + rng.uniform(-0.01, 0.01), 5),
        },
        "volume": volume,
        "unit": unit,
        "estimated_cost": int(cost),
        "photos": [f"files/usulan-{kel.short}-{kel.year}-{index + 1:04d}.jpg"],
    }
    if by_rw:
        proposer = Who("ketua_rw", f"u-rw-{kel.short}-{rw:02d}", rw=rw)
    else:
        proposer = Who("ketua_rt", f"u-rt-{kel.short}-{rw:02d}-{rt:02d}", rw=rw, rt=rt)
    return Proposal(index, payload, proposer)


def revision_of(proposal):
    """What the proposer changes after a return, by the return's reason."""
    payload, (_, what) = proposal.payload, proposal.returned
    if what == "estimated_cost":
        return {"estimated_cost": int(round(payload["estimated_cost"] * 0.9, -5)) or 100_000}
    if what == "location":
        location = dict(payload["location"])
        location["address"] = f"{location['address']}, samping musala (patok merah)"
        return {"location": location}
    volume = max(1, int(payload["volume"] * 0.8))
    return {"volume": volume, "estimated_cost": int(round(payload["estimated_cost"] * 0.8, -5))}


# -- the stages --------------------------------------------------------------------------

BAPPEDA = Who("bappeda", "u-bappeda-1", scope=CITY_CODE)


class Demo:
    """The stages, in order; each prints one line (:class:`Show`)."""

    def __init__(self, args, pool, show, nodes, kelurahan):
        self.args, self.pool, self.show, self.nodes = args, pool, show, nodes
        self.kelurahan = kelurahan
        self.city = nodes[CITY_CODE]
        self.fiscal_year = args.fiscal_year or args.year - 1

    def run(self):
        for kel in self.kelurahan:
            kel.proposals = generate_proposals(kel)
        self.check_nodes()
        self.stage("residents imported", self.import_residents)
        if "notify" in node.SERVICES:
            self.stage("contacts registered with notify", self.register_contacts)
        else:
            self.show.stage(
                "contacts: skipped (notify is not among make run's services)", time.monotonic()
            )
        self.stage("forums scheduled", self.schedule_forum)
        self.stage("proposals submitted", self.submit)
        self.stage("verification", self.verify)
        self.stage("scored against the forum's criteria", self.score)
        self.stage("forums held and ranked", self.hold_forum)
        self.stage("forwarded to the kecamatan", self.forward)
        self.wait("forwarded proposals to reach the city", self.at_city, before=BEFORE_CITY)
        self.heard_at_city("the camat of each kecamatan", {camat_of(k) for k in self.kelurahan})
        self.stage("kecamatan decisions by the camat at the city node", self.decide_kecamatan)
        self.wait("the camat's decisions to come back up", self.at_city, before={"forwarded"})
        self.heard_at_city("bappeda", {BAPPEDA})
        self.stage("city decisions by bappeda", self.decide_city)
        self.stage("decisions arrived at the kelurahan (get_proposal)", self.arrived)
        self.stage(f"budget {self.fiscal_year}", self.keep_budget)
        if "notify" in node.SERVICES:
            self.stage("the proposers heard of the decisions (notify)", self.notified)
            self.delivered()
        else:
            for what in ("notifications", "the fake providers"):
                self.show.stage(
                    f"{what}: skipped (notify is not among make run's services)", time.monotonic()
                )
        self.city_view()

    def stage(self, title, work):
        """``work(kel)`` for each kelurahan in turn; one line with what each returned."""
        since = time.monotonic()
        parts = [f"{kel.name} {work(kel)}" for kel in self.kelurahan]
        self.show.stage(f"{title}: " + "; ".join(parts), since)

    def each(self, label, items, work):
        return each(self.pool, self.show, label, items, work)

    # -- the kelurahan ---------------------------------------------------------------------

    def check_nodes(self):
        """Every service of every node answers ``status``, within ``--wait`` seconds, or
        the demo stops."""
        since = time.monotonic()
        deadline = since + self.args.wait
        while True:
            missing = [problem for code in self.nodes if (problem := not_answering(code))]
            if not missing or time.monotonic() >= deadline:
                break
            time.sleep(1)
        if missing:
            for line in missing:
                print(f"  not answering: {line}", file=sys.stderr)
            print("run `make run` in another terminal first", file=sys.stderr)
            raise SystemExit(2)
        labels = ", ".join(f"{n.label} ({code})" for code, n in self.nodes.items())
        self.show.stage(f"nodes answer: {labels}; services {', '.join(node.SERVICES)}", since)

    def import_residents(self, kel):
        rows = generated_residents.generate(kel.residents_wanted, kel.seed, kel.code)
        text = io.StringIO()
        generated_residents.write_csv(rows, text)
        text.seek(0)
        records = [{"line": line, "payload": item} for line, item in read_residents(text)]
        batches = [records[i : i + IMPORT_BATCH] for i in range(0, len(records), IMPORT_BATCH)]
        # the batches' command ids are <import id>:<first line>, so the size is part of it
        import_id = f"demo-{kel.short}-{kel.seed}-{len(records)}"
        replies = self.each(
            f"{kel.name} residents, batches of {IMPORT_BATCH}",
            batches,
            lambda batch: kel.node.call(
                kel.who("operator"), "citizens.import_residents", import_id=import_id, rows=batch
            ),
        )
        accepted = sum(r["accepted"] for r in replies if r)
        again = sum(r["accepted"] for r in replies if r and r["duplicate_batch"])
        refused = sum(len(r["rejected"]) for r in replies if r)
        kel.residents_accepted = accepted
        detail = f"{accepted - again} new" + (f", {again} from a run before" if again else "")
        if refused:
            detail += f", {refused} refused (NIK registered before)"
        return f"{len(records)} ({detail})"

    def register_contacts(self, kel):
        """The kelurahan's proposers, lurah and bendahara with generated addresses and
        channels (the fake gateways of make run take the messages), and at the city the
        camat of its kecamatan and bappeda, each registering themselves."""
        people = {p.proposer for p in kel.proposals} | {kel.who("lurah"), kel.who("bendahara")}
        self.each(
            f"{kel.name} contacts",
            sorted(people, key=lambda who: who.user),
            lambda who: kel.node.call(
                kel.who("operator"),
                "notify.register_contact",
                user_id=who.user,
                role=who.role,
                rw=who.rw,
                rt=who.rt,
                **reach(who),
                command_id=kel.key("contact-reach", who.user),
            ),
        )
        for who in (camat_of(kel), BAPPEDA):
            self.city.call(
                who,
                "notify.register_contact",
                **reach(who),
                command_id=kel.key("contact", who.user),
            )
        channels = _tally(reach(who)["channels"][0] for who in people)
        return f"{len(people)} ({channels}), the camat and bappeda at the city (email)"

    def schedule_forum(self, kel):
        operator = kel.who("operator")
        tolerant(
            self.show,
            f"{kel.name}: schedule the forum",
            kel.node.call,
            operator,
            "proposals.schedule_forum",
            year=kel.year,
            date=f"{kel.year - 1}-01-22",
            theme=f"Musrenbang Kelurahan {kel.name} untuk RKPD {kel.year}",
            place=f"Aula Kantor Kelurahan {kel.name}",
            command_id=kel.key("schedule_forum"),
        )
        tolerant(
            self.show,
            f"{kel.name}: set the forum's criteria",
            kel.node.call,
            operator,
            "proposals.set_criteria",
            forum_id=kel.forum_id,
            command_id=kel.key("set_criteria"),
        )
        forum = kel.node.call(operator, "proposals.get_forum", forum_id=kel.forum_id)
        criteria = ", ".join(f"{c['code']} x{c['weight']:g}" for c in forum["criteria"] or ())
        return f"{forum['id']} on {forum['date']} (criteria {criteria})"

    def submit(self, kel):
        def submit(proposal):
            view = kel.node.call(
                proposal.proposer,
                "proposals.submit",
                **proposal.payload,
                command_id=kel.key("submit", proposal.index),
            )
            proposal.id = view["id"]
            return view["version"] == 1 and view["status"] == "submitted"

        new = self.each(f"{kel.name} submit", kel.proposals, submit)
        sectors = len({p.payload["sector"] for p in kel.proposals})
        units = {(p.payload["location"]["rw"], p.payload["location"]["rt"]) for p in kel.proposals}
        before = sum(1 for n in new if not n)
        return f"{len(new)} from {len(units)} RT, {sectors} sectors" + (
            f" ({before} there from a run before)" if before else ""
        )

    def verify(self, kel):
        operator, lurah = kel.who("operator"), kel.who("lurah")
        by_index = {p.index: p for p in kel.proposals}
        duplicates = [p for p in kel.proposals if p.kind == "duplicate"]
        returns = [p for p in kel.proposals if p.kind == "return"]
        rejects = [p for p in kel.proposals if p.kind == "reject"]

        def first_look(p):
            if p.kind == "duplicate":
                where = by_index[p.survivor].payload["location"]
                return kel.node.call(
                    lurah,
                    "proposals.merge",
                    proposal_id=p.id,
                    survivor_id=by_index[p.survivor].id,
                    reason=f"Sama dengan usulan RT {where['rt']:02d} RW {where['rw']:02d}"
                    " (lokasi dan kegiatan sama)",
                    command_id=kel.key("merge", p.index),
                )
            if p.kind == "return":
                return kel.node.call(
                    operator,
                    "proposals.return_for_revision",
                    proposal_id=p.id,
                    reason=p.returned[0],
                    command_id=kel.key("return", p.index),
                )
            return kel.node.call(
                operator,
                "proposals.reject",
                proposal_id=p.id,
                code=p.rejection[0],
                text=p.rejection[1],
                command_id=kel.key("reject", p.index),
            )

        self.each(f"{kel.name} merge, return, reject", duplicates + returns + rejects, first_look)
        self.each(
            f"{kel.name} revise",
            returns,
            lambda p: kel.node.call(
                p.proposer,
                "proposals.revise",
                proposal_id=p.id,
                **revision_of(p),
                command_id=kel.key("revise", p.index),
            ),
        )
        verified = [p for p in kel.proposals if p.kind in ("plain", "return")]
        self.each(
            f"{kel.name} verify",
            verified,
            lambda p: kel.node.call(
                operator,
                "proposals.verify",
                proposal_id=p.id,
                note="Lokasi disurvei, foto dan ukuran sesuai"
                if p.kind == "plain"
                else "Sesuai setelah perbaikan",
                command_id=kel.key("verify", p.index),
            ),
        )
        return (
            f"{len(verified)} verified ({len(returns)} returned and revised first),"
            f" {len(rejects)} rejected, {len(duplicates)} merged into the proposal they repeat"
        )

    def score(self, kel):
        forum = kel.node.call(kel.who("operator"), "proposals.get_forum", forum_id=kel.forum_id)
        codes = [criterion["code"] for criterion in forum["criteria"]]
        views = self.each(
            f"{kel.name} score",
            [p for p in kel.proposals if p.kind in ("plain", "return")],
            lambda p: kel.node.call(
                kel.who("operator"),
                "proposals.score",
                proposal_id=p.id,
                scores={c: p.marks[n % len(p.marks)] for n, c in enumerate(codes)},
                command_id=kel.key("score", p.index),
            ),
        )
        totals = [v["score_total"] for v in views if v and v.get("score_total") is not None]
        spread = f" (totals {min(totals):.2f} to {max(totals):.2f})" if totals else ""
        return f"{len(totals)}{spread}"

    def hold_forum(self, kel):
        lurah = kel.who("lurah")
        roles = ((1, "ketua RW"), (7, "ketua RW"), (12, "tokoh perempuan"), (3, "karang taruna"))
        delegates = [
            {"delegate_id": f"d-{kel.short}-{n}", "rw": rw, "role": role}
            for n, (rw, role) in enumerate(roles, start=1)
        ]
        tolerant(
            self.show,
            f"{kel.name}: record the forum",
            kel.node.call,
            lurah,
            "proposals.record_forum",
            forum_id=kel.forum_id,
            held_on=f"{kel.year - 1}-01-22",
            attendance=60 + len(kel.proposals) // 3,
            berita_acara=f"files/ba-musrenbang-{kel.short}-{kel.year}.pdf",
            delegates=delegates,
            command_id=kel.key("record_forum"),
        )
        tolerant(
            self.show,
            f"{kel.name}: rank the forum",
            kel.node.call,
            lurah,
            "proposals.rank_forum",
            forum_id=kel.forum_id,
            command_id=kel.key("rank_forum"),
        )
        forum = kel.node.call(lurah, "proposals.get_forum", forum_id=kel.forum_id)
        ranking = forum["ranking"]
        wanted = max(2, round(len(kel.proposals) * self.args.forward_share))
        kel.forwarded = ranking[:wanted]
        attendance = forum["held"]["attendance"] if forum["held"] else "?"
        first = f", first {ranking[0]['title']!r} ({ranking[0]['total']:.2f})" if ranking else ""
        return f"{attendance} attending, {len(ranking)} ranked{first}"

    def forward(self, kel):
        done = self.each(
            f"{kel.name} forward",
            kel.forwarded,
            lambda entry: kel.node.call(
                kel.who("operator"),
                "proposals.forward",
                proposal_id=entry["proposal_id"],
                rank=entry["rank"],
                forum_id=kel.forum_id,
                command_id=kel.key("forward", entry["proposal_id"]),
            ),
        )
        return f"top {sum(1 for d in done if d)} to Kec. {wilayah.name_of(kel.kecamatan)}"

    # -- the city --------------------------------------------------------------------------

    def city_statuses(self, kel):
        """The status of each of the kelurahan's proposals in the city's view."""
        statuses, page = {}, 1
        while True:
            reply = self.city.call(
                BAPPEDA, "proposals.list_proposals", kelurahan=kel.code, page=page, per_page=200
            )
            statuses.update((item["id"], item["status"]) for item in reply["items"])
            if page * reply["per_page"] >= reply["total"]:
                return statuses
            page += 1

    def at_city(self, kel, before):
        """Whether the city's view has moved each proposal awaiting a decision past
        ``before``; the number still waiting."""
        statuses = self.city_statuses(kel)
        ids = [e["proposal_id"] for e in kel.forwarded]
        if before == {"forwarded"}:  # after the camat: those accepted
            ids = [i for i in ids if kel.decisions.get(i) == "accepted_kecamatan"]
        pending = sum(1 for i in ids if statuses.get(i, "verified") in before)
        return not pending, pending

    def wait(self, what, look, **kwargs):
        since = time.monotonic()
        for kel in self.kelurahan:
            wait_for(
                self.show,
                f"{kel.name}'s {what}",
                lambda kel=kel: look(kel, **kwargs),
                self.args.timeout,
            )
        self.show.stage(f"waited for {what}", since)

    def decide_kecamatan(self, kel):
        camat = camat_of(kel)
        count = len(kel.forwarded)
        plan = [(e["proposal_id"], planned(KECAMATAN_PLAN, e["rank"])) for e in kel.forwarded]

        def decide(item):
            proposal_id, decision = item
            reason = CAMAT_REASONS.get(decision)
            return self.city.call(
                camat,
                "proposals.decide",
                proposal_id=proposal_id,
                level="kecamatan",
                decision=decision,
                **({"reason": reason} if reason else {}),
                command_id=kel.key("decide-kecamatan", proposal_id),
            )

        self.each(f"Kec. {wilayah.name_of(kel.kecamatan)} decide", plan, decide)
        for proposal_id, decision in plan:
            kel.decisions[proposal_id] = (
                "accepted_kecamatan" if decision == "accepted" else decision
            )
        return f"{count} by the camat of {wilayah.name_of(kel.kecamatan)}: {_tally(d for _, d in plan)}"

    def decide_city(self, kel):
        costs = {e["proposal_id"]: e["estimated_cost"] for e in kel.forwarded}
        ranks = {e["proposal_id"]: e["rank"] for e in kel.forwarded}
        accepted = [i for i, s in kel.decisions.items() if s == "accepted_kecamatan"]
        plan = [(pid, planned(CITY_PLAN, ranks[pid])) for pid in accepted]

        def decide(item):
            proposal_id, decision = item
            extra = {}
            if decision == "funded":
                extra = funding(costs[proposal_id])
            elif decision in BAPPEDA_REASONS:
                extra = {"reason": BAPPEDA_REASONS[decision]}
            return self.city.call(
                BAPPEDA,
                "proposals.decide",
                proposal_id=proposal_id,
                level="city",
                decision=decision,
                **extra,
                command_id=kel.key("decide-city", proposal_id),
            )

        self.each("bappeda decide", plan, decide)
        funded = sum(funding(costs[p])["amount"] for p, d in plan if d == "funded")
        for proposal_id, decision in plan:
            kel.decisions[proposal_id] = CITY_STATUS.get(decision, decision)
        return f"{len(plan)}: {_tally(d for _, d in plan)} ({rupiah(funded)} funded)"

    def arrived(self, kel):
        """Every decision the city made is on the proposal at its kelurahan."""
        pending = dict(kel.decisions)

        def look():
            def status_of(proposal_id):
                view = kel.node.call(
                    kel.who("operator"), "proposals.get_proposal", proposal_id=proposal_id
                )
                return view["id"], view["status"]

            for proposal_id, status in self.pool.map(status_of, list(pending)):
                if status == pending[proposal_id]:
                    del pending[proposal_id]
            return not pending, len(pending)

        wait_for(self.show, f"the decisions to reach {kel.name}", look, self.args.timeout)
        return f"{len(kel.decisions)}: {_tally(kel.decisions.values())}"

    # -- the budget ------------------------------------------------------------------------

    def keep_budget(self, kel):
        year = self.fiscal_year
        operator, lurah, bendahara = kel.who("operator"), kel.who("lurah"), kel.who("bendahara")
        call, key = kel.node.call, kel.key
        tolerant(
            self.show,
            f"{kel.name}: open {year}",
            call,
            lurah,
            "budget.open_fiscal_year",
            year=year,
            command_id=key("open_fiscal_year", year),
        )
        lines = []
        for activity, name, category, allocated in BUDGET_LINES:
            tolerant(
                self.show,
                f"{kel.name}: plan {activity} {category}",
                call,
                lurah,
                "budget.plan_line",
                fiscal_year=year,
                activity=activity,
                activity_name=name,
                category=category,
                source="source.apbd",
                allocated=allocated,
                command_id=key("plan_line", year, activity, category),
            )
            lines.append(f"{year}-{activity}-{category.removeprefix('expense.')}")
        call(
            bendahara,
            "budget.post_transaction",
            date=f"{year}-01-06",
            description="Alokasi operasional triwulan I diterima di rekening kelurahan",
            entries=[
                {"account": "asset.bank", "debit": 20_000_000},
                {"account": "source.apbd", "credit": 20_000_000},
            ],
            command_id=key("funds", year),
        )
        expense = call(
            operator,
            "budget.record_expense",
            line_id=lines[0],
            amount=3_250_000,
            date=f"{year}-01-22",
            description=f"Konsumsi Musrenbang Kelurahan {kel.name}",
            payee="Katering warga RW 04",
            receipt={
                "number": f"KW-{kel.short}-001",
                "date": f"{year}-01-22",
                "file": f"files/kw-{kel.short}-001.jpg",
            },
            command_id=key("expense", year),
        )
        call(
            lurah,
            "budget.approve_expense",
            expense_id=expense["expense_id"],
            command_id=key("approve", year),
        )
        paid = call(
            bendahara,
            "budget.pay_expense",
            expense_id=expense["expense_id"],
            paid_on=f"{year}-01-26",
            command_id=key("pay", year),
        )
        site = next((pid for pid, s in kel.decisions.items() if s == "funded"), None)
        visit = call(
            operator,
            "budget.plan_activity",
            kind="proposal_site" if site else "rw_visit",
            title="Binwas lokasi usulan yang didanai" if site else "Binwas RW 07",
            planned_on=f"{year}-02-03",
            **({"proposal_id": site} if site else {"rw": 7}),
            line_id=lines[2],
            planned_cost=350_000,
            command_id=key("activity", year),
        )
        advance = call(
            operator,
            "budget.record_advance",
            person_id=lurah.user,
            line_id=lines[2],
            amount=350_000,
            paid_on=f"{year}-02-03",
            description="Transport Binwas ke lokasi usulan, dibayar lurah dari kantong sendiri",
            activity_id=visit["activity_id"],
            command_id=key("advance", year),
        )
        reimbursed = call(
            bendahara,
            "budget.reimburse_advance",
            advance_id=advance["advance_id"],
            number=f"PG-{kel.short}-{year}-001",
            amount=350_000,
            paid_on=f"{year}-02-10",
            command_id=key("reimburse", year),
        )
        people = {paid["recorded_by"], paid["approved_by"], paid["paid_by"]}
        return (
            f"{len(lines)} lines, an expense of {rupiah(paid['amount'])} {paid['status']}"
            f" (recorded, approved, paid by {len(people)} people), the lurah's advance of"
            f" {rupiah(advance['amount'])} {reimbursed['status']}"
        )

    # -- notify ----------------------------------------------------------------------------

    def notified(self, kel):
        """Each proposer whose proposal was decided has heard of it (notify's history)."""
        by_id = {p.id: p for p in kel.proposals}
        proposers = sorted({by_id[i].proposer for i in kel.decisions if i in by_id}, key=str)
        heard = {}

        def history(who):
            reply = kel.node.call(
                kel.who("lurah"),
                "notify.list_notifications",
                user_id=who.user,
                event_type="proposal.decided",
                per_page=50,
            )
            return who, reply["items"]

        def look():
            heard.update(self.pool.map(history, [w for w in proposers if not heard.get(w)]))
            pending = sum(1 for who in proposers if not heard.get(who))
            return not pending, pending

        # not all: decided before their contacts were registered (by an earlier run), or slow
        with contextlib.suppress(Failed):
            wait_for(self.show, f"{kel.name}'s proposers to hear of it", look, NOTIFY_WAIT)
        items = [item for found in heard.values() for item in found]
        if proposers and kel.example is None:
            inbox = kel.node.call(proposers[0], "notify.inbox", page=1, per_page=1)
            latest = (inbox["items"] or [{}])[0].get("message") or {}
            text = latest.get("body") or latest.get("title") if isinstance(latest, dict) else latest
            kel.example = (
                f"{proposers[0].user}'s inbox: {inbox['total']} notifications, the latest {text!r}"
            )
        told = sum(1 for who in proposers if heard.get(who))
        return (
            f"{told} of {len(proposers)} proposers told, {len(items)} notifications of decisions"
            f" ({_tally(i['state'] for i in items)}; channel {_tally(i['channel'] for i in items)})"
        )

    def heard_at_city(self, who_hears, listeners):
        """Notify on the city has told ``listeners`` (the camat, bappeda) what awaits their
        decision: a digest once the group is quiet (make run: NOTIFY_DIGEST_SECONDS, 5 s).
        A later run finds the notices of the first in their inboxes."""
        since, heard = time.monotonic(), {}
        if "notify" not in node.SERVICES:
            self.show.stage(f"{who_hears}: notify is not among make run's services", since)
            return

        def look():
            for who in listeners - set(heard):
                inbox = self.city.call(who, "notify.inbox", page=1, per_page=20)
                if inbox["total"]:
                    heard[who] = inbox["items"]
            pending = len(listeners) - len(heard)
            return not pending, pending

        with contextlib.suppress(Failed):
            wait_for(self.show, f"{who_hears} to hear", look, CITY_NOTICE_WAIT)
        for who, items in sorted(heard.items(), key=lambda item: item[0].user):
            self.show.note(f"{who.role} {who.scope}: {(items[0]['message'] or {}).get('body')}")
        self.show.stage(
            f"{who_hears} heard from notify at the city: {len(heard)} of {len(listeners)}",
            since,
        )

    def delivered(self):
        """How many notifications each node's fake providers received (make run's
        development gateways: nothing is sent to anyone), beside notify's own tally."""
        since = time.monotonic()
        if os.environ.get("NOTIFY_PROVIDERS"):
            self.show.stage("fake providers: not in use (NOTIFY_PROVIDERS is set)", since)
            return
        lines = []
        for code, each_node in self.nodes.items():
            staff = Who("admin", f"u-admin-{code.replace('.', '')}", scope=code)
            states = {}
            with contextlib.suppress(Failed):  # shown below as what the providers have
                wait_for(
                    self.show,
                    f"{each_node.label}'s messages to leave",
                    lambda n=each_node, who=staff, found=states: _settled(n, who, found),
                    DELIVERY_WAIT,
                )
            received = {channel: fake_received(code, channel) for channel in node.FAKES}
            tally = ", ".join(f"{ch} {n}" for ch, n in received.items())
            held = states.get("sms", {}).get("created", 0)
            lines.append(
                f"{each_node.label} {tally}"
                + (f" (SMS held for 08:00-20:00 WIB: {held})" if held else "")
            )
        self.show.stage("notifications at the fake providers: " + "; ".join(lines), since)

    # -- the city's view -------------------------------------------------------------------

    def city_view(self):
        since, lagging = time.monotonic(), []
        for kel in self.kelurahan:
            total = kel.node.call(kel.who("operator"), "proposals.count_by_status")["total"]

            def proposals_there(kel=kel, total=total):
                reply = self.city.call(
                    BAPPEDA, "proposals.list_proposals", kelurahan=kel.code, per_page=1
                )
                return reply["total"] >= total, total - reply["total"]

            def residents_there(kel=kel):
                have = sum(
                    k["population"]
                    for kec in self.city.call(BAPPEDA, "citizens.city_monograph")["kecamatan"]
                    for k in kec["kelurahan"]
                    if k["kelurahan"] == kel.code
                )
                return have >= kel.residents_accepted, kel.residents_accepted - have

            for what, look in (("proposals", proposals_there), ("residents", residents_there)):
                try:
                    wait_for(self.show, f"{kel.name}'s {what} at the city", look, 60)
                except Failed as error:
                    lagging.append(str(error))
        self.show.stage("the city has caught up" + (" in part" if lagging else ""), since)
        for line in lagging:
            self.show.note(f"still replicating: {line}")
        for kel in self.kelurahan:
            if kel.example:
                self.show.note(kel.example)
        print_city(self.city, self.kelurahan, self.fiscal_year)


def not_answering(code):
    """What keeps a node from answering ``status`` on every service (None: it answers)."""
    secret = node.ROOT / "run" / node.NAMESPACE / code / "auth_secret"
    if not secret.exists():
        return f"{code}: no {secret.relative_to(node.ROOT)}"
    env, _ = token_for(code, "operator", "u-demo-check")
    try:
        with ClusterRpcProxy({"AMQP_URI": env["AMQP_URI"]}, timeout=10) as rpc:
            for service in node.SERVICES:
                getattr(rpc, service).status()
    except Exception as error:  # noqa: BLE001  (whatever it is, the node is not up)
        return f"{code}: {type(error).__name__} {error}".strip()[:200]
    return None


BEFORE_CITY = {"submitted", "returned", "verified"}
BUDGET_LINES = (
    ("musrenbang", "Penyelenggaraan Musrenbang Kelurahan", "expense.consumption", 7_500_000),
    ("musrenbang", "Penyelenggaraan Musrenbang Kelurahan", "expense.printing", 1_500_000),
    ("binwas", "Pembinaan dan pengawasan wilayah", "expense.transport", 6_000_000),
)


def funding(cost):
    """Bappeda's funding of a proposal: the source by its size, 95 % of its cost."""
    source = "apbd" if cost > 150_000_000 else "dana_kelurahan"
    source = "hibah_rw" if cost <= 30_000_000 else source
    return {"funding_source": source, "amount": int(round(cost * 0.95, -5)) or cost}


def wait_for(show, label, look, timeout):
    """Poll ``look()`` (-> (done, pending count)) until done; Failed after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done, pending = look()
        if done:
            if show.tty:
                print("\r\033[K", end="", flush=True)
            return
        if time.monotonic() > deadline:
            raise Failed(f"waiting for {label}: {pending} still pending after {timeout:.0f} s")
        if show.tty:
            print(f"\r        waiting for {label}: {pending} pending ", end="", flush=True)
        time.sleep(POLL)


def reach(who):
    """A contact's generated addresses and channels (none is anyone's): proposers by
    WhatsApp (opted in) or SMS, the lurah, camat and bappeda by email, the bendahara by
    WhatsApp; every notification also stays in the person's in-app inbox."""
    digits = int(hashlib.sha256(who.user.encode()).hexdigest(), 16) % 10**8
    phone = f"+62812{digits:08d}"
    email = f"{who.user}@contoh.rembug.test"
    if who.role in ("lurah", "camat", "bappeda"):
        return {"email": email, "channels": ["email", "in_app"]}
    if who.role == "bendahara" or digits % 2:
        return {"phone": phone, "channels": ["whatsapp", "sms", "in_app"], "whatsapp_opt_in": True}
    return {"phone": phone, "channels": ["sms", "in_app"]}


def camat_of(kel):
    return Who("camat", f"u-camat-{kel.kecamatan.replace('.', '')}", scope=kel.kecamatan)


def fake_received(code, channel):
    """What the node's fake provider of ``channel`` has received (its file, kept across
    restarts: every run's)."""
    path = node.node_paths(code) / f"fake-{channel}.jsonl"
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def _settled(each_node, staff, states):
    """Whether no notification of the node waits to be sent (SMS held outside the
    window aside); fills ``states`` with ``{channel: {state: count}}``."""
    states.clear()
    for channel in node.FAKES:
        for state in ("created", "sending", "temporary_failure", "sent", "delivered"):
            reply = each_node.call(
                staff, "notify.list_notifications", channel=channel, state=state, per_page=1
            )
            if reply["total"]:
                states.setdefault(channel, {})[state] = reply["total"]
    moving = sum(
        n
        for channel, counts in states.items()
        for state, n in counts.items()
        if state in ("sending", "temporary_failure") or (state == "created" and channel != "sms")
    )
    return not moving, moving


def _tally(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return ", ".join(f"{n} {value}" for value, n in counts.items()) or "none"


def print_city(city, kelurahan, fiscal_year):
    print("\nThe city's view (the city node, 32.75, as bappeda)")
    print("  proposals per kecamatan and status (proposals.count_by_status):")
    for kecamatan in sorted({k.kecamatan for k in kelurahan}):
        counts = city.call(BAPPEDA, "proposals.count_by_status", kecamatan=kecamatan)
        total = counts.pop("total")
        listed = ", ".join(f"{s} {n}" for s, n in counts.items() if n) or "none"
        print(f"    Kec. {wilayah.name_of(kecamatan):<11} {total:>4}: {listed}")
    year = kelurahan[0].year
    ranking = city.call(BAPPEDA, "proposals.city_ranking", year=year, limit=5)
    print(f"  the city ranking {year}, first 5 of {ranking['total']} (proposals.city_ranking):")
    for entry in ranking["items"]:
        score = "-" if entry["score_total"] is None else f"{entry['score_total']:.2f}"
        print(
            f"    {entry['position']['city']:>3}. {score:>4}"
            f"  {wilayah.name_of(entry['kelurahan']):<11} {entry['title'][:48]:<48}"
            f"  {entry['status']}"
        )
    monograph = city.call(BAPPEDA, "citizens.city_monograph")
    print(f"  city monograph (citizens.city_monograph): {monograph['population']} residents")
    for kec in monograph["kecamatan"]:
        for kel in kec["kelurahan"]:
            print(f"    {_monograph_line(kec, kel)}")
    report = city.call(BAPPEDA, "budget.city_realisation", fiscal_year=fiscal_year)
    print(f"  budget {fiscal_year} per kelurahan (budget.city_realisation):")
    for row in report["kelurahan"]:
        print(
            f"    {row['name']:<11} allocated {rupiah(row['allocated']):>14}"
            f", realised {rupiah(row['realised']):>13}"
            f", advances owed {rupiah(row['advances_outstanding'])} ({row['advances_count']})"
        )


def _monograph_line(kec, kel):
    sexes = ", ".join(f"{sex} {n}" for sex, n in sorted((kel.get("by_sex") or {}).items()))
    groups = {}
    for group, n in (kel.get("vulnerable") or {}).items():
        name = "disability" if group.startswith("disability.") else group
        groups[name] = groups.get(name, 0) + n
    vulnerable = ", ".join(f"{group} {n}" for group, n in groups.items())
    return (
        f"Kec. {kec['name']} / {kel['name']}: {kel['population']} ({sexes});"
        f" vulnerable: {vulnerable or 'none recorded'}"
    )


def print_next(codes):
    where = (node.ROOT / "run" / node.NAMESPACE).relative_to(node.ROOT)
    print("\nWhere to look next")
    print(
        f"  logs (JSON lines): {where}/<code>/<service>.log, e.g. {where}/32.75/proposals-replication.log"
    )
    print("  metrics (Prometheus) and health, per node and service:")
    for code in codes:
        first, *others = node.SERVICES
        ports = ", ".join(f"{s} :{node.http_port(code, s)}" for s in others)
        url = f"http://127.0.0.1:{node.http_port(code, first)}/metrics"
        print(f"    {node.node_label(code)}: {first} {url}, {ports}")
    call = ".venv/bin/python -m deploy.local.call"
    print("  the proposals and their histories:")
    print(f'    {call} --role operator proposals.list_proposals \'{{"status": "funded"}}\'')
    print(f'    {call} --role operator proposals.get_proposal \'{{"proposal_id": "<id>"}}\'')
    print(
        f'    {call} --kelurahan 32.75 --role bappeda proposals.list_proposals \'{{"kecamatan": "32.75.05"}}\''
    )


# -- main --------------------------------------------------------------------------------


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kelurahan", default=node.DEFAULT_KELURAHAN, help="the big forum")
    parser.add_argument("--other", default=node.DEMO_KELURAHAN[1], help="the small one")
    parser.add_argument("--proposals", type=int, default=330)
    parser.add_argument("--residents", type=int, default=3000)
    parser.add_argument("--other-proposals", type=int, default=12)
    parser.add_argument("--other-residents", type=int, default=300)
    parser.add_argument("--forward-share", type=float, default=0.09, help="of the proposals")
    parser.add_argument("--year", type=int, default=2027, help="the plan year")
    parser.add_argument("--fiscal-year", type=int, help="of the budget (default: year - 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4, help="calls in flight at once")
    parser.add_argument("--timeout", type=float, default=120, help="s to wait for replication")
    parser.add_argument("--wait", type=float, default=0, help="s to wait for the nodes to start")
    args = parser.parse_args(argv)
    for code in (args.kelurahan, args.other):
        if not wilayah.is_kelurahan(code):
            parser.error(f"{code!r} is not a kelurahan code of Kota Bekasi")
    return args


def main(argv=None):
    args = parse(argv)
    # amqp's notices of a proxy closing while the nodes start up, or of a reply it dropped
    logging.getLogger("amqp").setLevel(logging.ERROR)
    started = time.monotonic()
    kelurahan = [
        Kelurahan(args.kelurahan, args.proposals, args.residents, args.seed, args.year),
        Kelurahan(args.other, args.other_proposals, args.other_residents, args.seed, args.year),
    ]
    nodes = {code: Node(code) for code in (CITY_CODE, args.kelurahan, args.other)}
    for kel in kelurahan:
        kel.node = nodes[kel.code]
    print(
        f"rembug demo: Musrenbang {args.year} in {kelurahan[0].name} ({args.proposals} proposals,"
        f" {args.residents} residents) and {kelurahan[1].name} ({args.other_proposals},"
        f" {args.other_residents}); decided at the city"
    )
    pool = concurrent.futures.ThreadPoolExecutor(args.workers, thread_name_prefix="demo")
    try:
        Demo(args, pool, Show(stages=STAGES), nodes, kelurahan).run()
    except Failed as error:
        print(f"\ndemo stopped: {error}", file=sys.stderr)
        return 1
    except RemoteError as error:
        print(f"\ndemo stopped: {error.exc_type}: {error.value}", file=sys.stderr)
        return 1
    finally:
        pool.shutdown(cancel_futures=True)
        for each_node in nodes.values():
            each_node.close()
    print_next(list(nodes))
    print(f"\ndone in {time.monotonic() - started:.0f} s")
    return 0


STAGES = 20

if __name__ == "__main__":
    sys.exit(main())
