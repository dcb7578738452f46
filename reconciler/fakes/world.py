"""A whole stackherd on the fake cloud and the in-memory store: the functional tests, the property
test and the benchmark all build their world here, so they exercise one wiring."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.records import DesiredServer, Tenant, role_arn_for
from reconciler.desired import DesiredWrites, trail
from reconciler.engine import Engine
from reconciler.fakes.cloud import FakeClock, FakeCloud, FakeConnector
from reconciler.fakes.memory import MemoryStore
from reconciler.fakes.queue import MemoryRequeuer
from reconciler.fakes.templates import StaticTemplateCatalog
from reconciler.planner import PlanSettings
from reconciler.writes import WriteResult


@dataclass
class FakeWorld:
    clock: FakeClock = field(default_factory=FakeClock)
    cloud: FakeCloud = field(init=False)
    store: MemoryStore = field(default_factory=MemoryStore)
    templates: StaticTemplateCatalog = field(default_factory=StaticTemplateCatalog)
    settings: PlanSettings = field(default_factory=PlanSettings)
    latency_s: float = 0.0
    rate_per_account: float | None = None
    requeuer: MemoryRequeuer = field(default_factory=MemoryRequeuer)

    def __post_init__(self) -> None:
        self.cloud = FakeCloud(self.clock, latency_s=self.latency_s, rate_per_account=self.rate_per_account)
        self.connector = FakeConnector(self.cloud)
        self.engine = Engine(
            self.store, self.connector, self.templates, settings=self.settings, clock=self.clock, requeuer=self.requeuer
        )
        self.writes = DesiredWrites(self.store, clock=self.clock, templates=self.templates)

    def add_tenant(
        self,
        tenant_id: str,
        account_id: str,
        *,
        regions: tuple[str, ...] = ("us-east-1",),
        tier: str = "standard",
        template_version: str = "v1",
        paused: bool = False,
    ) -> Tenant:
        external_id = f"ext-{tenant_id}"
        self.cloud.add_account(account_id, external_id=external_id)
        tenant = Tenant(
            tenant_id=tenant_id,
            account_id=account_id,
            regions=regions,
            role_arn=role_arn_for(account_id, "StackherdExecution"),
            external_id=external_id,
            tier=tier,
            template_version=template_version,
            paused=paused,
        )
        self.store.put_tenant(tenant)
        return tenant

    def put(
        self, tenant_id: str, gameserver_id: str, owner: str = "player", *, region: str | None = None, **config: object
    ) -> WriteResult:
        """A whole config (PUT), through the write service, as the player `owner`."""
        tenant = self.store.get_tenant(tenant_id)
        assert tenant is not None, f"no tenant {tenant_id}"
        return self.writes.put_server(
            tenant, gameserver_id, owner, dict(config), trail=trail(owner, "test"), region=region
        )

    def delete(self, tenant_id: str, gameserver_id: str) -> WriteResult:
        tenant = self.store.get_tenant(tenant_id)
        assert tenant is not None, f"no tenant {tenant_id}"
        return self.writes.delete_server(tenant, gameserver_id, trail=trail("admin", "test"))

    def server(self, tenant_id: str, gameserver_id: str) -> DesiredServer | None:
        return self.store.get_server(tenant_id, gameserver_id)

    def converge(self, tenant_id: str, passes: int = 5) -> None:
        """Reconcile, let CloudFormation finish, repeat: what the sweep does over time."""
        for _ in range(passes):
            self.engine.reconcile_tenant(tenant_id)
            self.cloud.settle_all()
