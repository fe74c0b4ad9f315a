"""Who is acting, with which role, inside which scope. Pure data, no I/O."""

from dataclasses import dataclass

ROLES = (
    "warga",  # resident
    "ketua_rt",
    "ketua_rw",
    "pamor",
    "operator",  # operator kelurahan
    "lurah",
    "bendahara",  # treasurer
    "camat",
    "bappeda",  # city planner
    "admin",
    "system",  # a service acting on its own behalf (replication, schedulers)
)

KELURAHAN_STAFF = ("operator", "lurah", "admin")


@dataclass(frozen=True)
class Actor:
    """A caller: a pseudonymous user id, a role and the scope it acts in.

    ``kelurahan`` is a code such as ``32.75.05.1002``; a camat's scope is a
    kecamatan code (``32.75.05``); bappeda and admin have city scope
    (``kelurahan`` is ``32.75``). ``rw`` and ``rt`` narrow the scope of RW and RT
    chairs (and pamor, to an RW).
    """

    user_id: str
    role: str
    kelurahan: str
    rw: int | None = None
    rt: int | None = None

    def covers(self, kelurahan, rw=None, rt=None):
        """True when a place (kelurahan code, RW, RT) lies inside this actor's scope."""
        if not (kelurahan == self.kelurahan or kelurahan.startswith(self.kelurahan + ".")):
            return False
        rw_ok = self.rw is None or rw == self.rw
        rt_ok = self.rt is None or rt == self.rt
        return rw_ok and rt_ok

    def as_dict(self):
        """The actor as recorded on events: pseudonymous id and role only."""
        return {"id": self.user_id, "role": self.role}


SYSTEM = Actor(user_id="system", role="system", kelurahan="32.75")
