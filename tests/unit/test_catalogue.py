"""The plans catalogue: the shipped file, prices, the order form's fields, a malformed file."""
import copy

import pytest

from services.common.errors import DomainError, ValidationError
from services.common.money import Money
from services.orders.catalogue import (CatalogueError, load_catalogue, parse_catalogue,
                                       parse_ip_pools)

CATALOGUE = load_catalogue()
HOSTNAME = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"


def catalogue_data(**changes) -> dict:
    """A small valid catalogue, as read from YAML."""
    data = {
        "version": 7,
        "currency": "EUR",
        "datacenters": {"WAW1": {"name": "Warsaw", "country": "PL"},
                        "FRA1": {"name": "Frankfurt", "country": "DE"}},
        "ip_pools": {"WAW1": ["192.0.2.10-192.0.2.20"], "FRA1": ["198.51.100.0/29"]},
        "order_fields": {
            "dedicated": [{"name": "hostname", "type": "string", "pattern": HOSTNAME, "max_length": 253},
                          {"name": "os_template", "type": "choice", "options": ["debian-12", "ubuntu-24.04"]},
                          {"name": "datacenter", "type": "choice", "options_from": "stock"}],
            "vps": [{"name": "hostname", "type": "string", "pattern": HOSTNAME, "max_length": 253},
                    {"name": "os_template", "type": "choice", "options": ["debian-12"]}],
        },
        "plans": [
            {"id": "vps-s", "kind": "vps", "name": "VPS S", "description": "2 vCPU, 4 GB RAM",
             "monthly_price": "9.90", "periods": {1: 0, 3: 3, 12: 10}, "stock": {"WAW1": None}},
            {"id": "ded-a", "kind": "dedicated", "name": "Dedicated A", "description": "8 cores",
             "monthly_price": "119.00", "periods": {1: 0, 12: 8}, "stock": {"WAW1": 2, "FRA1": 1}},
        ],
    }
    data.update(changes)
    return data


def plan_data(**changes) -> dict:
    plan = copy.deepcopy(catalogue_data()["plans"][0])
    plan.update(changes)
    return plan


def good_fields(**changes) -> dict:
    fields = {"hostname": "web-1.example.com", "os_template": "debian-12", "datacenter": "WAW1"}
    fields.update(changes)
    return {name: value for name, value in fields.items() if value is not ...}


DEDICATED = parse_catalogue(catalogue_data()).plan("ded-a")


# --- the shipped catalogue ---------------------------------------------------------------

def test_shipped_catalogue_offers_at_least_four_plans_of_each_kind():
    assert len(CATALOGUE.list_plans("dedicated")) >= 4
    assert len(CATALOGUE.list_plans("vps")) >= 4
    assert CATALOGUE.version


def test_every_shipped_plan_is_priced_in_euro_for_one_three_six_and_twelve_months():
    for plan in CATALOGUE.plans:
        assert plan.period_months == (1, 3, 6, 12)
        assert plan.monthly_price.currency == "EUR"
        assert all(price["price"]["currency"] == "EUR" for price in plan.to_wire()["prices"])


def test_shipped_dedicated_plans_ask_for_a_datacenter_they_are_stocked_in_and_vps_plans_do_not():
    for plan in CATALOGUE.list_plans("dedicated"):
        datacenter = next(spec for spec in plan.required_fields if spec.name == "datacenter")
        assert datacenter.options == plan.datacenters
        assert all(code in CATALOGUE.ip_pools for code in plan.datacenters)
    for plan in CATALOGUE.list_plans("vps"):
        assert [spec.name for spec in plan.required_fields] == ["hostname", "os_template"]


def test_plan_on_the_wire_has_exactly_the_api_shape():
    wire = CATALOGUE.plan("vps-s").to_wire()
    assert set(wire) == {"id", "kind", "name", "description", "prices", "required_fields", "available"}
    assert wire["prices"][0] == {"period_months": 1, "price": {"amount": "9.90", "currency": "EUR"}}
    assert wire["required_fields"] == [
        {"name": "hostname", "type": "string", "pattern": HOSTNAME},
        {"name": "os_template", "type": "choice",
         "options": ["ubuntu-24.04", "ubuntu-22.04", "debian-12", "almalinux-9", "rocky-linux-9"]},
    ]


def test_plan_summary_for_an_order_names_id_name_and_kind():
    assert CATALOGUE.plan("vps-m").summary_to_wire() == {"id": "vps-m", "name": "VPS M", "kind": "vps"}


def test_list_plans_filters_by_kind_cheapest_first():
    vps = CATALOGUE.list_plans("vps")
    assert {plan.kind for plan in vps} == {"vps"}
    assert [plan.monthly_price.minor for plan in vps] == sorted(plan.monthly_price.minor for plan in vps)
    assert len(CATALOGUE.list_plans()) == len(CATALOGUE.plans)


def test_list_plans_refuses_an_unknown_kind():
    with pytest.raises(ValidationError) as refused:
        CATALOGUE.list_plans("vds")
    assert "kind" in refused.value.fields


@pytest.mark.parametrize("plan_id", ["vps-xxl", "", None, 5])
def test_unknown_plan_is_refused_with_unknown_plan(plan_id):
    with pytest.raises(DomainError) as refused:
        CATALOGUE.plan(plan_id)
    assert refused.value.error_code == "unknown_plan"
    assert refused.value.status == 422


# --- prices ------------------------------------------------------------------------------

@pytest.mark.parametrize("months, amount", [
    (1, "9.90"),     # no discount
    (3, "28.81"),    # 9.90 x 3 x 0.97 = 28.809
    (6, "56.43"),    # 9.90 x 6 x 0.95 = 56.430
    (12, "106.92"),  # 9.90 x 12 x 0.90 = 106.920
])
def test_price_for_a_period_applies_its_discount_to_the_cent(months, amount):
    assert CATALOGUE.plan("vps-s").price_for(months) == Money.of(amount, "EUR")


def test_price_for_a_period_rounds_half_a_cent_up():
    data = catalogue_data(plans=[plan_data(monthly_price="0.50", periods={1: 1})])
    assert parse_catalogue(data).plan("vps-s").price_for(1) == Money.of("0.50", "EUR")  # 0.495


def test_price_with_a_decimal_discount():
    data = catalogue_data(plans=[plan_data(monthly_price="10.00", periods={6: "7.5"})])
    assert parse_catalogue(data).plan("vps-s").price_for(6) == Money.of("55.50", "EUR")


@pytest.mark.parametrize("months", [2, 0, -1, 24, "12", 12.0, True, None])
def test_a_period_the_plan_is_not_sold_for_is_a_validation_error(months):
    with pytest.raises(ValidationError) as refused:
        CATALOGUE.plan("vps-s").price_for(months)
    assert refused.value.fields == {"period_months": ["must be one of 1, 3, 6, 12"]}


# --- the order form ----------------------------------------------------------------------

def test_valid_fields_come_back_as_the_plan_asks_for_them():
    assert DEDICATED.validate_fields(good_fields()) == good_fields()


@pytest.mark.parametrize("hostname", ["web-1.example.com", "a", "1host", "SRV01.Example.COM", "x" * 63,
                                      ".".join(["a" * 63] * 3) + "." + "b" * 61])
def test_rfc_1123_hostnames_are_accepted(hostname):
    assert DEDICATED.validate_fields(good_fields(hostname=hostname))["hostname"] == hostname


@pytest.mark.parametrize("hostname", ["-web", "web-", "web_1", "web..example", "web.", ".web",
                                      "web 1", "web\n", "wéb", "x" * 64, "a.-b", "web/1"])
def test_a_hostname_outside_rfc_1123_is_refused(hostname):
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(hostname=hostname))
    assert refused.value.fields == {"fields.hostname": ["is not in the required format"]}


def test_a_hostname_longer_than_253_characters_is_too_long():
    hostname = ".".join(["a" * 63] * 4)  # 255 characters
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(hostname=hostname))
    assert refused.value.fields == {"fields.hostname": ["must be at most 253 characters long"]}


@pytest.mark.parametrize("name", ["hostname", "os_template", "datacenter"])
def test_a_missing_field_is_required(name):
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(**{name: ...}))
    assert refused.value.fields == {f"fields.{name}": ["required"]}


def test_a_null_field_is_required():
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(hostname=None))
    assert refused.value.fields == {"fields.hostname": ["required"]}


@pytest.mark.parametrize("value", [42, 4.2, True, ["web"], {"name": "web"}])
@pytest.mark.parametrize("name", ["hostname", "os_template"])
def test_a_field_that_is_not_a_string_is_the_wrong_type(name, value):
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(**{name: value}))
    assert refused.value.fields == {f"fields.{name}": ["must be a string"]}


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_field_is_refused(value):
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(hostname=value, os_template=value))
    assert refused.value.fields == {"fields.hostname": ["must not be empty"],
                                    "fields.os_template": ["must not be empty"]}


@pytest.mark.parametrize("value", ["windows-11", "Debian-12", "debian-12 "])
def test_a_choice_outside_its_options_is_refused(value):
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(os_template=value))
    assert refused.value.fields == {"fields.os_template": ["must be one of: debian-12, ubuntu-24.04"]}


def test_a_datacenter_the_plan_is_not_stocked_in_is_refused():
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(datacenter="AMS1"))
    assert refused.value.fields == {"fields.datacenter": ["must be one of: WAW1, FRA1"]}


def test_an_unknown_field_is_refused():
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(good_fields(root_password="hunter2"))
    assert refused.value.fields == {"fields.root_password": ["unknown field"]}


def test_every_problem_of_a_form_is_reported_at_once():
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields({"hostname": "-bad", "os_template": 7, "colour": "red"})
    assert refused.value.fields == {"fields.hostname": ["is not in the required format"],
                                    "fields.os_template": ["must be a string"],
                                    "fields.datacenter": ["required"],
                                    "fields.colour": ["unknown field"]}


@pytest.mark.parametrize("fields", [None, "hostname=web", ["web"], 1])
def test_fields_that_are_not_an_object_are_refused(fields):
    with pytest.raises(ValidationError) as refused:
        DEDICATED.validate_fields(fields)
    assert refused.value.fields == {"fields": ["must be an object"]}


def test_a_string_field_without_max_length_is_still_bounded():
    data = catalogue_data()
    data["order_fields"]["vps"] = [{"name": "note", "type": "string"}]
    plan = parse_catalogue(data).plan("vps-s")
    assert plan.validate_fields({"note": "n" * 255}) == {"note": "n" * 255}
    with pytest.raises(ValidationError):
        plan.validate_fields({"note": "n" * 256})
    assert plan.to_wire()["required_fields"] == [{"name": "note", "type": "string"}]


# --- IP pools in the catalogue -------------------------------------------------------------

def test_each_datacenter_has_an_ip_pool_from_the_file():
    catalogue = parse_catalogue(catalogue_data())
    assert catalogue.ip_pools["WAW1"].size == 11
    assert next(catalogue.ip_pools["FRA1"].addresses()) == "198.51.100.1"


def test_ip_pools_can_be_overridden_per_datacenter():
    catalogue = load_catalogue(ip_pools={"WAW1": ["10.20.0.0/30"]})
    assert catalogue.ip_pools["WAW1"].size == 2
    assert next(catalogue.ip_pools["WAW1"].addresses()) == "10.20.0.1"
    assert next(catalogue.ip_pools["FRA1"].addresses()) == "198.51.100.10"


def test_ip_pool_override_is_read_from_one_setting():
    assert parse_ip_pools("WAW1=10.0.0.0/24, 10.0.1.5-10.0.1.9; FRA1=10.1.0.1 ;") == {
        "WAW1": ["10.0.0.0/24", "10.0.1.5-10.0.1.9"], "FRA1": ["10.1.0.1"]}
    assert parse_ip_pools("") == {}
    with pytest.raises(CatalogueError):
        parse_ip_pools("10.0.0.0/24")


# --- a malformed catalogue is refused ------------------------------------------------------

@pytest.mark.parametrize("broken, problem", [
    ({"plans": [plan_data(monthly_price=9.9)]}, "quoted decimal"),
    ({"plans": [plan_data(monthly_price="9.999")]}, "two places"),
    ({"plans": [plan_data(monthly_price="0.00")]}, "above zero"),
    ({"plans": [plan_data(kind="vds")]}, "kind"),
    ({"plans": [plan_data(id="VPS S")]}, "lower-case"),
    ({"plans": [plan_data(), plan_data()]}, "used twice"),
    ({"plans": [plan_data(stock={"AMS1": None})]}, "unknown datacenter"),
    ({"plans": [plan_data(periods={1: 100})]}, "percent"),
    ({"plans": [plan_data(periods={0: 0})]}, "at least 1"),
    ({"plans": [plan_data(periods={1: 2.5})]}, "quoted decimal"),
    ({"plans": [plan_data(colour="red")]}, "unknown key colour"),
    ({"plans": []}, "non-empty"),
    ({"currency": "XXX"}, "currency"),
    ({"version": None}, "version"),
    ({"ip_pools": {"WAW1": ["192.0.2.0/24"], "FRA1": ["192.0.2.128/25"]}}, "share addresses"),
    ({"ip_pools": {"WAW1": ["192.0.2.300"]}}, "not an address"),
    ({"ip_pools": {"WAW1": ["192.0.2.10"], "AMS1": ["10.0.0.1"]}}, "unknown datacenter"),
    ({"ip_pools": {"FRA1": ["198.51.100.0/29"]}}, "no IP pool"),
])
def test_a_malformed_catalogue_is_refused_with_where_and_why(broken, problem):
    with pytest.raises(CatalogueError, match=problem):
        parse_catalogue(catalogue_data(**broken))


@pytest.mark.parametrize("field, problem", [
    ({"name": "hostname", "type": "text"}, "type"),
    ({"name": "hostname", "type": "string", "pattern": "(["}, "regular expression"),
    ({"name": "hostname", "type": "string", "options": ["a"]}, "not options"),
    ({"name": "os", "type": "choice", "options": []}, "non-empty"),
    ({"name": "os", "type": "choice", "options": ["a", "a"]}, "repeat"),
    ({"name": "os", "type": "choice", "pattern": "a"}, "not a pattern"),
    ({"name": "dc", "type": "choice", "options_from": "datacenters"}, "stock"),
    ({"type": "string"}, "missing name"),
])
def test_a_malformed_order_field_is_refused(field, problem):
    data = catalogue_data()
    data["order_fields"]["vps"] = [field]
    with pytest.raises(CatalogueError, match=problem):
        parse_catalogue(data)


def test_a_file_that_is_not_yaml_is_refused(tmp_path):
    path = tmp_path / "catalogue.yml"
    path.write_text("plans: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(path)


def test_a_datacenter_choice_names_each_option_with_whether_it_has_stock():
    plan = CATALOGUE.plan("ded-e2388g")
    room = {datacenter: datacenter != plan.datacenters[0] for datacenter in plan.datacenters}
    wire = plan.to_wire(room)
    datacenter = next(spec for spec in wire["required_fields"] if spec["name"] == "datacenter")
    assert datacenter["options"] == [{"value": code, "available": room[code]} for code in plan.datacenters]
    operating_system = next(spec for spec in wire["required_fields"] if spec["name"] == "os_template")
    assert all(isinstance(option, str) for option in operating_system["options"])   # other choices stay plain
    assert wire["available"] is True
    assert plan.to_wire({code: False for code in plan.datacenters})["available"] is False
