"""The broker ACL plan derived from descriptors: exact bindings for a small mesh."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError, DescriptorError
from mesh_stream.governance.acl_plan import (
    ALERTS_TOPIC,
    plan_acls,
    plan_project,
    plan_retirement,
    refuse_domain_principals,
    refuse_planned_principals,
    retired_domains,
)
from mesh_stream.kafka.acls import CLUSTER, Acl, Operation, Pattern, Permission, Resource, diff

T, G, X, C = Resource.TOPIC, Resource.GROUP, Resource.TRANSACTIONAL_ID, Resource.CLUSTER
LIT, PRE = Pattern.LITERAL, Pattern.PREFIXED
Op = Operation


def product(name: str, classification: str = "internal", **fields: Any) -> DataProduct:
    domain = name.split(".", maxsplit=1)[0]
    document: dict[str, Any] = {
        "name": name,
        "domain": domain,
        "kind": "aggregate" if fields.get("inputs") else "source-aligned",
        "description": f"{name} for tests",
        "owner": {"team": f"{domain}-team", "contact": f"{domain}@example.com"},
        "schema": f"schemas/{name}.avsc",
        "slos": {"freshness_seconds": 5.0, "availability": 99.0},
        "classification": classification,
        **fields,
    }
    return DataProduct.model_validate(document)


SHOP = product("shop.order")
PROFILE = product("people.profile", "pii", readers=["stats"])
SUMMARY = product("stats.summary", inputs=["shop.order", "people.profile"])
MESH = [SHOP, PROFILE, SUMMARY]


def grants(who: str, *rows: tuple[Resource, Pattern, str, tuple[Operation, ...]]) -> set[Acl]:
    return {Acl(who, res, pat, name, op) for res, pat, name, ops in rows for op in ops}


def domain_basics(domain: str) -> set[Acl]:
    """What every domain gets: its own prefix, cluster, groups, transactional ids."""
    who = f"User:{domain}"
    return grants(
        who,
        (T, PRE, f"{domain}.", (Op.READ, Op.WRITE, Op.CREATE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS)),
        (C, LIT, CLUSTER, (Op.IDEMPOTENT_WRITE, Op.DESCRIBE_CONFIGS)),
        (G, PRE, f"{domain}.", (Op.READ,)),
        (G, PRE, f"{domain}-", (Op.READ,)),
        (G, PRE, "mesh-tail-", (Op.READ,)),
        (X, PRE, f"{domain}.", (Op.WRITE, Op.DESCRIBE)),
        (X, PRE, f"{domain}-", (Op.WRITE, Op.DESCRIBE)),
        # `mesh products status --watch`: the product alerts, read without committing
        (T, LIT, "_mesh_product_alerts", (Op.READ, Op.DESCRIBE)),
        (G, PRE, "mesh-products-status-", (Op.READ,)),
    )


def reads(who: str, topic: str) -> set[Acl]:
    return grants(
        who,
        (T, LIT, topic, (Op.READ, Op.DESCRIBE, Op.DESCRIBE_CONFIGS)),
        (T, LIT, f"{topic}.dlq", (Op.WRITE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS)),
    )


def of(plan_acls_: tuple[Acl, ...], who: str) -> set[Acl]:
    return {acl for acl in plan_acls_ if acl.principal == who}


def test_a_reader_only_domain_reads_every_non_pii_product_and_no_pii_one() -> None:
    plan = plan_acls(MESH, domains=["audit"])
    expected = (
        domain_basics("audit")
        | reads("User:audit", "shop.order.v1")
        | reads("User:audit", "stats.summary.v1")
    )
    assert of(plan.acls, "User:audit") == expected


def test_a_reader_keeps_every_earlier_major_of_a_product() -> None:
    """A reader drains major 1 as it moves, and a processor may be held at it
    (`Input(..., major=1)`); the grants were on the current major only, so apply took them
    away (h46)."""
    moved = product("shop.order", version=3)
    plan = plan_acls([moved], domains=["audit"])
    expected = domain_basics("audit") | {
        acl for major in (1, 2, 3) for acl in reads("User:audit", f"shop.order.v{major}")
    }
    assert of(plan.acls, "User:audit") == expected


def test_a_pii_product_is_read_by_its_owner_and_the_named_readers_only() -> None:
    plan = plan_acls(MESH, domains=["audit"])
    readers = {
        acl.principal
        for acl in plan.acls
        if acl.name == "people.profile.v1" and acl.operation is Op.READ
    }
    # people itself reads through its prefix; the platform's registry (masked samples) and
    # monitor (offsets, the newest record's timestamp) read every product
    assert readers == {"User:stats", "User:registry", "User:monitor"}
    assert Acl("User:people", T, PRE, "people.", Op.READ) in plan.acls


def test_a_processor_domain_gets_its_internal_topics_groups_and_transactional_ids() -> None:
    plan = plan_acls(MESH)
    expected = (
        domain_basics("stats")
        | reads("User:stats", "shop.order.v1")
        | reads("User:stats", "people.profile.v1")
        | grants(
            "User:stats",
            (T, PRE, "mesh-stats.", (Op.ALL,)),
            (G, PRE, "mesh-stats.", (Op.READ,)),
            (X, PRE, "mesh-stats.", (Op.WRITE, Op.DESCRIBE)),
        )
    )
    assert of(plan.acls, "User:stats") == expected
    # A source-only domain runs no processor: no mesh-<domain>. grants.
    assert not any(a.name.startswith("mesh-shop.") for a in plan.acls)


def test_only_the_owner_may_write_or_create_a_product_topic() -> None:
    plan = plan_acls(MESH, domains=["audit"])
    for topic in ("shop.order.v1", "people.profile.v1", "stats.summary.v1"):
        owner = f"User:{topic.split('.')[0]}"
        writers = {
            acl.principal
            for acl in plan.acls
            if acl.resource is T
            and acl.operation in (Op.WRITE, Op.CREATE, Op.ALL)
            and (acl.name == topic or (acl.pattern is PRE and topic.startswith(acl.name)))
        }
        assert writers == {owner}, topic


PRODUCT_TOPICS = ("people.profile.v1", "shop.order.v1", "stats.summary.v1")


def test_the_registry_principal_gets_its_topic_groups_writer_ids_and_reads_products() -> None:
    plan = plan_acls(
        MESH, registry_principal="User:reg", registry_topic="_reg", health_topic="_health"
    )
    assert of(plan.acls, "User:reg") == grants(
        "User:reg",
        (T, LIT, "_reg", (Op.READ, Op.WRITE, Op.CREATE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS)),
        (G, PRE, "mesh-registry-", (Op.READ,)),
        (X, PRE, "mesh-registry-", (Op.WRITE, Op.DESCRIBE)),
        (C, LIT, CLUSTER, (Op.IDEMPOTENT_WRITE, Op.DESCRIBE_CONFIGS)),
        (T, LIT, "_health", (Op.READ, Op.DESCRIBE)),
        *((T, LIT, topic, (Op.READ, Op.DESCRIBE)) for topic in PRODUCT_TOPICS),
    )


def test_the_monitor_reads_products_and_dlqs_describes_groups_and_owns_its_topics() -> None:
    plan = plan_acls(
        MESH,
        domains=["audit"],
        monitor_principal="User:mon",
        health_topic="_health",
        alerts_topic="_alerts",
    )
    # ALTER_CONFIGS: it corrects its topics when a broker auto-created them with its defaults
    owned = (Op.READ, Op.WRITE, Op.CREATE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS)
    domains = ("audit", "people", "shop", "stats")
    assert of(plan.acls, "User:mon") == grants(
        "User:mon",
        (T, LIT, "_health", owned),
        (T, LIT, "_alerts", owned),
        (G, PRE, "mesh-monitor-", (Op.READ,)),
        (C, LIT, CLUSTER, (Op.IDEMPOTENT_WRITE, Op.DESCRIBE_CONFIGS)),
        *((T, LIT, topic, (Op.READ, Op.DESCRIBE)) for topic in PRODUCT_TOPICS),
        *((T, LIT, f"{topic}.dlq", (Op.READ, Op.DESCRIBE)) for topic in PRODUCT_TOPICS),
        *(
            (G, PRE, prefix, (Op.DESCRIBE,))
            for domain in domains
            for prefix in (f"{domain}.", f"{domain}-")
        ),
        (G, PRE, "mesh-stats.", (Op.DESCRIBE,)),  # the processors' groups
    )
    # it writes no product, and every grant is in the scope apply manages
    assert not any(
        acl.operation in (Op.WRITE, Op.CREATE, Op.ALL) and acl.name.endswith(".v1")
        for acl in of(plan.acls, "User:mon")
    )
    assert all(plan.manages(acl) for acl in plan.acls)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        # a domain that would be a service's user, or own the platform's `mesh-` names
        ({"domains": ["registry"]}, "'registry' is the Kafka user of the platform's registry"),
        ({"domains": ["monitor"]}, "'monitor' is the Kafka user of the platform's monitor"),
        ({"domains": ["mesh"]}, "'mesh' would own the platform's own names"),
        ({"domains": ["mesh-shop"]}, "'mesh-shop' would own the platform's own names"),
        ({"domains": ["admin"]}, "'admin' is the registry's and the broker's super user"),
        # a service principal every user, a domain or the other service has
        ({"monitor_principal": "User:*"}, "'User:*' is not a Kafka principal like User:"),
        ({"registry_principal": "Group:x"}, "'Group:x' is not a Kafka principal like User:"),
        ({"monitor_principal": "User:shop"}, "is also the Kafka user of domain 'shop'"),
        ({"monitor_principal": "User:registry"}, "name one user (User:registry)"),
        # Kafka's principal for every client that did not authenticate
        (
            {"registry_principal": "User:ANONYMOUS"},
            "'User:ANONYMOUS' is the principal Kafka gives every unauthenticated client",
        ),
        # a service topic another party may write, or another service's
        ({"health_topic": "_mesh_registry"}, "MESH_HEALTH_TOPIC and MESH_REGISTRY_TOPIC name"),
        ({"alerts_topic": "shop.order.v1"}, "MESH_ALERTS_TOPIC 'shop.order.v1' lies among"),
        ({"health_topic": "mesh-stats.x"}, "lies among the topics of domain 'stats'"),
    ],
)
def test_a_plan_that_would_share_a_grant_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^ACL plan refused: ") as refused:
        plan_acls(MESH, **changes)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("reader", "said"),
    [
        ("registry", "'registry' is the Kafka user of the platform's registry"),
        ("monitor", "'monitor' is the Kafka user of the platform's monitor"),
        ("admin", "'admin' is the registry's and the broker's super user"),
        ("mesh-x", "'mesh-x' would own the platform's own names"),
        ("anonymous", "'anonymous' is the owner the registry records"),
    ],
)
def test_readers_naming_a_platform_user_are_refused(reader: str, said: str) -> None:
    """The plan granted a pii product's readers READ and WRITE/CREATE on its DLQ: with
    `readers: [registry, monitor]` the platform's services could write a dead-letter topic,
    which the docs say they never do (a campaign; it was only a warning)."""
    secret = product("shop.secret", "pii", readers=[reader])
    with pytest.raises(ConfigurationError, match=r"^ACL plan refused: ") as refused:
        plan_acls([*MESH, secret])
    assert f"shop.secret: readers: {said}" in str(refused.value)
    assert (
        f"(User:{reader} would be granted READ on shop.secret.v1 and WRITE on "
        f"shop.secret.v1.dlq)" in str(refused.value)
    )


def test_a_registry_writer_id_of_its_own_is_granted_literally() -> None:
    plan = plan_acls(MESH, registry_writer_id="writer-a")
    assert Acl("User:registry", X, LIT, "writer-a", Op.WRITE) in plan.acls
    assert not any(a.name == "writer-a" for a in plan_acls(MESH).acls)


def test_the_plan_is_sorted_and_the_same_for_any_descriptor_order() -> None:
    one = plan_acls(MESH, domains=["audit"])
    two = plan_acls(list(reversed(MESH)), domains=["audit", "shop"])
    assert one.acls == two.acls == tuple(sorted(one.acls))
    assert list(one.by_principal()) == [
        "User:audit", "User:monitor", "User:people", "User:registry", "User:shop", "User:stats",
    ]  # fmt: skip


def test_a_processor_reading_a_pii_product_it_is_no_reader_of_is_a_warning() -> None:
    closed = product("people.profile", "pii")
    plan = plan_acls([SHOP, closed, SUMMARY])
    assert plan.warnings == (
        "stats.summary is built from people.profile, which is classified pii and does not "
        "name stats in its readers: the broker will refuse its processor; add "
        "`readers: [stats]` to the descriptor of people.profile (if the owners of "
        "people.profile agree)",
    )
    assert not any(a.name == "people.profile.v1" and a.principal == "User:stats" for a in plan.acls)


def test_overlapping_domain_names_are_refused() -> None:
    """`orders` and `orders-eu`: the `orders-` grants cover `orders-eu`'s groups and
    transactional ids, so User:orders could fence its producers and join its groups (h32:
    a warning only, and applied)."""
    with pytest.raises(ConfigurationError) as refused:
        plan_acls([SHOP], domains=["shop-eu"])
    assert str(refused.value) == (
        "ACL plan refused: domain 'shop-eu' starts with 'shop-': the `shop-…` consumer groups "
        "and transactional ids of domain 'shop' would cover those of 'shop-eu', granted to "
        "User:shop by prefix; rename one of the domains"
    )


def test_manages_only_allow_acls_of_plan_principals_on_mesh_names() -> None:
    plan = plan_acls(MESH, domains=["audit"])
    assert plan.manages(Acl("User:audit", T, LIT, "shop.order.v1", Op.WRITE))
    assert plan.manages(Acl("User:stats", G, PRE, "mesh-stats.old", Op.READ))
    assert plan.manages(Acl("User:shop", C, LIT, CLUSTER, Op.ALTER))
    assert plan.manages(Acl("User:registry", T, LIT, "_mesh_registry", Op.DELETE))
    # Other principals, other names and DENY rules are never the mesh's to delete.
    assert not plan.manages(Acl("User:bob", T, LIT, "shop.order.v1", Op.READ))
    assert not plan.manages(Acl("User:audit", T, LIT, "legacy-topic", Op.READ))
    assert not plan.manages(Acl("User:audit", T, LIT, "shop.order.v1", Op.READ, Permission.DENY))


def test_a_reader_from_another_repository_keeps_the_grants_its_own_project_made() -> None:
    """`readers: [billing]` where billing is another repository's domain: this project's
    apply grants it READ on the product and manages only its grants on this project's
    topics; its cluster operations, `mesh tail` groups and alerts read are billing's own
    project's (apply here deleted them, breaking billing's idempotent producer)."""
    plan = plan_acls([product("shop.secret", "pii", readers=["billing"])])
    assert Acl("User:billing", T, LIT, "shop.secret.v1", Op.READ) in plan.acls
    assert plan.manages(Acl("User:billing", T, LIT, "shop.secret.v1", Op.READ))
    assert plan.manages(Acl("User:billing", T, LIT, "shop.old.v1", Op.READ))  # a grant undone
    for its_own in (
        Acl("User:billing", C, LIT, CLUSTER, Op.IDEMPOTENT_WRITE),
        Acl("User:billing", G, PRE, "mesh-tail-", Op.READ),
        Acl("User:billing", G, PRE, "mesh-products-status-", Op.READ),
        Acl("User:billing", T, LIT, ALERTS_TOPIC, Op.READ),
        Acl("User:billing", T, PRE, "billing.", Op.WRITE),
    ):
        assert not plan.manages(its_own), its_own
    # retired with --retire, the domain is the project's to clean up after all
    assert plan.retiring(["billing"]).manages(Acl("User:billing", C, LIT, CLUSTER, Op.ALTER))
    # and a retired domain's topics are, its outside readers' grants on them included
    assert not plan.manages(Acl("User:billing", T, LIT, "old.thing.v1", Op.READ))
    assert plan.retiring(["old"]).manages(Acl("User:billing", T, LIT, "old.thing.v1", Op.READ))


def test_a_domain_removed_from_the_project_is_found_by_its_own_write_grant_and_retired() -> None:
    """The cluster holds the full mesh's ACLs plus unrelated ones; the project lost `people`
    (and the product built from it): apply's diff deletes every ACL the mesh made for it."""
    before = plan_acls(MESH)
    now = plan_acls([SHOP, product("stats.summary", inputs=["shop.order"])])
    bob = Acl("User:bob", T, PRE, "bob.", Op.WRITE)  # the domain grant's shape, not the mesh's
    unrelated = {
        bob,
        Acl("User:people", T, LIT, "legacy-topic", Op.READ),  # not a mesh name
        Acl("User:people", T, PRE, "people.", Op.WRITE, Permission.DENY),
        Acl("User:ops", T, LIT, "people.profile.v1", Op.READ),  # not a mesh principal
    }
    existing = set(before.acls) | unrelated
    assert retired_domains(now, existing) == ["people"]
    # with the mesh's `mesh-tail-` grant beside it, bob's is a domain's too
    tails = Acl("User:bob", G, PRE, "mesh-tail-", Op.READ)
    assert retired_domains(now, existing | {tails}) == ["bob", "people"]
    assert retired_domains(before, existing) == []  # a domain still planned is no retiree
    retiring = now.retiring(["people"])
    changes = diff(retiring.acls, existing, retiring.manages)
    assert changes.create == ()
    gone = set(before.acls) - set(now.acls)
    assert set(changes.delete) == gone
    assert of(tuple(gone), "User:people") == of(before.acls, "User:people")
    assert {acl.principal for acl in gone} >= {"User:people", "User:monitor", "User:registry"}
    assert not unrelated & set(changes.delete)
    assert now.retiring([]) is now


def test_a_domain_the_project_lacks_is_retired_only_when_asked() -> None:
    """One repository per domain: a project lacking `people` does not mean the mesh lost it.
    Only a domain named with --retire loses its ACLs; one asked for that the cluster no
    longer shows is reported; one the project still grants is refused."""
    before = plan_acls(MESH)
    now = plan_acls([SHOP, product("stats.summary", inputs=["shop.order"])])
    existing = set(before.acls)
    left = plan_retirement(now, existing, [])
    assert (left.retire, left.left_alone, left.nothing_left) == ((), ("people",), ())
    asked = plan_retirement(now, existing, ["people", "gone"])
    assert (asked.retire, asked.left_alone, asked.nothing_left) == (("people",), (), ("gone",))
    changes = diff(now.acls, existing, now.retiring(left.retire).manages)
    assert not any("people" in str(acl) for acl in changes.delete)
    with pytest.raises(ConfigurationError, match=r"'shop': this project still grants it"):
        plan_retirement(now, existing, ["shop", "people"])
    # Partly retired (its WRITE grant removed by hand): still retired when asked for.
    partly = {a for a in existing if (a.principal, a.name) != ("User:people", "people.")}
    assert retired_domains(now, partly) == []
    assert plan_retirement(now, partly, ["people"]).retire == ("people",)


def test_a_replaced_service_principal_is_retired_on_the_names_the_plan_manages() -> None:
    """--monitor-principal User:monitor2 leaves the old User:monitor reading every product
    until --retire-principal names it; the plan's own principals are refused."""
    before = plan_acls(MESH)
    now = plan_acls(MESH, monitor_principal="User:monitor2")
    elsewhere = Acl("User:monitor", T, LIT, "legacy-topic", Op.READ)  # not a mesh name
    existing = set(before.acls) | {elsewhere}
    assert not [
        a for a in diff(now.acls, existing, now.manages).delete if "User:monitor " in str(a)
    ]
    changes = diff(now.acls, existing, now.retiring([], ["User:monitor"]).manages)
    assert set(changes.delete) == of(before.acls, "User:monitor")
    assert set(changes.create) == of(now.acls, "User:monitor2")
    refuse_planned_principals(now, ["User:monitor"])
    with pytest.raises(ConfigurationError, match=r"User:people is a domain's user on the clus"):
        refuse_domain_principals(existing, ["User:people"])  # another repository's domain
    refuse_domain_principals(existing, ["User:monitor"])
    for asked, said in [
        (["User:monitor2"], "User:monitor2 is still granted by this plan"),
        (["User:shop"], "User:shop is still granted by this plan"),
        (["monitor"], "'monitor' is not a Kafka principal"),
        (["User:*"], "'User:*' is not a Kafka principal"),
    ]:
        with pytest.raises(ConfigurationError, match=re.escape(said)):
            refuse_planned_principals(now, asked)


def test_readers_must_be_domain_names() -> None:
    with pytest.raises(ValueError, match="reader 'Stats Team' is not a domain name"):
        product("people.profile", "pii", readers=["Stats Team"])


def write_project(root: Path, products: list[DataProduct]) -> None:
    for item in products:
        folder = root / "domains" / item.domain / "products"
        folder.mkdir(parents=True, exist_ok=True)
        short = item.name.split(".", 1)[1]
        (folder / f"{short}.yaml").write_text(yaml.safe_dump(item.to_document()))


def test_plan_project_reads_descriptors_and_domain_folders(tmp_path: Path) -> None:
    write_project(tmp_path, MESH)
    (tmp_path / "domains" / "audit").mkdir()
    (tmp_path / "domains" / "__pycache__").mkdir()
    assert plan_project(tmp_path).acls == plan_acls(MESH, domains=["audit"]).acls


def test_plan_project_reports_broken_descriptors_with_their_file(tmp_path: Path) -> None:
    write_project(tmp_path, [SHOP])
    bad = tmp_path / "domains" / "shop" / "products" / "bad.yaml"
    bad.write_text("name: shop.bad\nreaders: nope\n")
    with pytest.raises(DescriptorError, match=r"bad\.yaml"):
        plan_project(tmp_path)


def test_mesh_acl_plan_prints_the_bindings_grouped_by_principal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_stream.cli.main import run

    write_project(tmp_path, [SHOP, product("people.profile", "pii"), SUMMARY])
    (tmp_path / "mesh.yaml").write_text("name: t\n")
    plan = plan_project(tmp_path)
    monkeypatch.chdir(tmp_path / "domains" / "shop")  # found upwards through mesh.yaml
    assert run(["acl", "plan"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[:3] == [
        "User:monitor (34 ACLs)",
        "  ALLOW DESCRIBE_CONFIGS CLUSTER          LITERAL  kafka-cluster",
        "  ALLOW IDEMPOTENT_WRITE CLUSTER          LITERAL  kafka-cluster",
    ]
    headers = [line for line in out.splitlines() if not line.startswith(" ")]
    assert headers == [f"{who} ({len(acls)} ACLs)" for who, acls in plan.by_principal().items()]
    assert err.startswith("warning: stats.summary is built from people.profile, which is ")
    assert err.endswith(f"{len(plan.acls)} ACLs for 5 principals\n")

    monkeypatch.chdir("/")
    monkeypatch.setenv("MESH_PROJECT_ROOT", str(tmp_path))
    assert run(["acl", "plan", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["acls"] == [acl.to_dict() for acl in plan.acls]
    assert document["principals"] == sorted(plan.principals)
    assert document["warnings"] == list(plan.warnings)


def test_a_registry_principal_that_is_no_principal_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_stream.cli.main import run

    write_project(tmp_path, [SHOP])
    assert run(["acl", "plan", "--root", str(tmp_path), "--registry-principal", "registry"]) == 2
    assert "'registry' is not a Kafka principal like User:registry" in capsys.readouterr().err
    assert run(["acl", "plan", "--root", str(tmp_path), "--monitor-principal", "mon"]) == 2
    assert "'mon' is not a Kafka principal like User:registry" in capsys.readouterr().err
    assert run(["acl", "plan", "--root", str(tmp_path), "--monitor-principal", "User:*"]) == 2
    assert "'User:*' is not a Kafka principal like User:registry" in capsys.readouterr().err
    # h51: a control character was printed raw in the plan, exit 0
    assert run(["acl", "plan", "--root", str(tmp_path), "--monitor-principal", "User:a\x01b"]) == 2
    assert "'User:a\\x01b' is not a Kafka principal like User:registry" in (capsys.readouterr().err)


def test_a_domain_to_retire_longer_than_any_domain_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """h51: a 300-character name passed and was echoed whole."""
    from mesh_stream.cli.main import run

    write_project(tmp_path, [SHOP])
    status = run(["acl", "apply", "--dry-run", "--root", str(tmp_path), "--retire", "d" * 300])
    assert status == 2
    assert "is longer than 64 characters" in capsys.readouterr().err
