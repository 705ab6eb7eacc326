"""The sandbox's seeded catalogue and its order generator (a realistic, reproducible mix)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class Variant:
    id: int
    sku: str
    title: str
    price: Decimal
    inventory_item_id: int
    available: int = 100
    committed: int = 0

    @property
    def on_hand(self) -> int:
        return self.available + self.committed


@dataclass
class Product:
    id: int
    title: str
    handle: str
    tags: list[str]
    variants: list[Variant]
    complements: list[int] = field(default_factory=list)  # product ids
    product_type: str = ""


# (handle, title, base price, tags, variant titles, complements by handle)
_CATALOGUE = [
    ("mug", "Stoneware Mug", "18.00", [], ["Default"], ["coffee-beans", "tea-sampler", "coaster-set"]),
    ("tee", "Organic Tee", "25.00", [], ["S / Black", "M / Black", "L / Black", "M / White"], ["cap", "socks"]),
    ("hoodie", "Heavy Hoodie", "64.00", [], ["M", "L", "XL"], ["tee", "cap"]),
    ("cap", "Field Cap", "22.00", [], ["One size"], ["tee"]),
    ("socks", "Merino Socks", "16.00", [], ["M", "L"], ["tee"]),
    ("coffee-beans", "Coffee Beans 1kg", "29.00", [], ["Whole bean", "Ground"], ["mug", "grinder"]),
    ("tea-sampler", "Tea Sampler", "24.00", [], ["Default"], ["mug", "kettle"]),
    ("grinder", "Burr Grinder", "89.00", ["fragile"], ["Default"], ["coffee-beans"]),
    ("kettle", "Gooseneck Kettle", "59.00", [], ["Default"], ["tea-sampler", "mug"]),
    ("coaster-set", "Cork Coasters", "12.00", [], ["Set of 4"], ["mug"]),
    ("vase", "Glass Vase", "45.00", ["fragile"], ["Small", "Large"], ["flowers-card"]),
    ("flowers-card", "Greeting Card", "5.00", [], ["Default"], ["vase"]),
    ("candle", "Soy Candle", "21.00", [], ["Cedar", "Fig"], ["matches"]),
    ("matches", "Safety Matches", "4.00", ["restricted"], ["Default"], ["candle"]),
    ("knife", "Chef Knife", "120.00", ["regulated"], ["20 cm"], ["board"]),
    ("board", "Oak Board", "48.00", [], ["Default"], ["knife"]),
    ("vitamins", "Vitamin D", "14.00", ["regulated"], ["60 caps"], []),
    ("lighter-fluid", "Lighter Fluid", "7.00", ["restricted"], ["Default"], []),
    ("ebook", "Brewing Guide (e-book)", "9.00", ["digital"], ["PDF"], ["coffee-beans"]),
    ("course", "Latte Art Course", "39.00", ["digital"], ["Online"], ["mug"]),
    ("gift-card", "Gift Card", "50.00", ["gift_card"], ["$25", "$50", "$100"], []),
    ("starter-kit", "Coffee Starter Kit", "129.00", ["bundle"], ["Default"], ["coffee-beans"]),
    ("tea-kit", "Tea Lover Bundle", "79.00", ["bundle"], ["Default"], ["tea-sampler"]),
    ("backpack", "Canvas Backpack", "95.00", [], ["Olive", "Black"], ["bottle"]),
    ("bottle", "Steel Bottle", "27.00", [], ["500 ml", "750 ml"], ["backpack"]),
    ("notebook", "Dot Notebook", "15.00", [], ["A5"], ["pen"]),
    ("pen", "Brass Pen", "34.00", [], ["Default"], ["notebook"]),
    ("blanket", "Wool Blanket", "110.00", [], ["Grey"], ["candle"]),
    ("planter", "Ceramic Planter", "38.00", ["fragile"], ["Default"], ["vase"]),
    ("subscription-beans", "Coffee Subscription", "26.00", ["subscription"], ["Monthly"], ["mug"]),
]


def build_catalogue(seed: int = 7) -> list[Product]:
    rnd = random.Random(seed)
    products: list[Product] = []
    ids = {}
    vid, iid = 40000, 70000
    for n, (handle, title, price, tags, vtitles, _) in enumerate(_CATALOGUE):
        pid = 8000 + n
        ids[handle] = pid
        variants = []
        for vt in vtitles:
            vid += 1
            iid += 1
            suffix = "" if vt in ("Default", "One size") else "-" + "".join(ch for ch in vt.upper() if ch.isalnum())[:6]
            variants.append(Variant(id=vid, sku=f"{handle.upper()[:10]}{suffix}", title=vt, price=Decimal(price),
                                    inventory_item_id=iid, available=rnd.choice([0, 3, 40, 100, 250, 500])
                                    if n % 7 == 3 else rnd.choice([40, 100, 250, 500])))
        products.append(Product(id=pid, title=title, handle=handle, tags=list(tags), variants=variants))
    for p, (_, _, _, _, _, comps) in zip(products, _CATALOGUE):
        p.complements = [ids[c] for c in comps]
    return products


# ---------------------------------------------------------------- addresses

_GOOD = {
    "US": [
        ("405 Lexington Ave", "", "New York", "NY", "10174"),
        ("1 Market St", "", "San Francisco", "CA", "94105"),
        ("233 S Wacker Dr", "Ste 4400", "Chicago", "IL", "60606"),
        ("1600 Pennsylvania Ave NW", "", "Washington", "DC", "20500"),
        ("500 Boylston St", "Apt 12", "Boston", "MA", "02116"),
        ("2000 Ponce de Leon Blvd", "", "Coral Gables", "FL", "33134"),
    ],
    "CA": [("290 Bremner Blvd", "", "Toronto", "ON", "M5V 3L9"), ("1 Rue Notre-Dame O", "", "Montréal", "QC", "H2Y 1S6")],
    "GB": [("10 Downing St", "", "London", "", "SW1A 2AA"), ("1 Deansgate", "Flat 3", "Manchester", "", "M3 1AZ")],
    "DE": [("Unter den Linden 77", "", "Berlin", "", "10117"), ("Marienplatz 8", "", "München", "", "80331")],
    "FR": [("5 Avenue Anatole France", "", "Paris", "", "75007"), ("1 Place Bellecour", "", "Lyon", "", "69002")],
    "ES": [("Calle de Alcalá 42", "", "Madrid", "M", "28014"), ("Passeig de Gràcia 92", "", "Barcelona", "B", "08008")],
    "MX": [("Paseo de la Reforma 222", "", "Ciudad de México", "CMX", "06600")],
    "AU": [("1 Macquarie St", "", "Sydney", "NSW", "2000"), ("200 Collins St", "", "Melbourne", "VIC", "3000")],
}
_LOCALES = {"US": ["en", "en", "es"], "CA": ["en", "fr"], "GB": ["en"], "DE": ["de"], "FR": ["fr"], "ES": ["es"],
            "MX": ["es"], "AU": ["en"]}
_CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "ES": "EUR", "MX": "MXN", "AU": "AUD"}
_NAMES = ["Dana Wu", "Lee Park", "Ana Ruiz", "Jonas Becker", "Chloé Martin", "Sam O'Neil", "Priya Nair",
          "Mateo García", "Olivia Smith", "Kenji Sato", "Zoë Müller", "Noah Brown"]
# Each faulty kind of ADDRESS-REASONS.md that Shopify's checkout lets through, as a US address.
# (`bad_country` is not here: Shopify refuses a shipping country outside its CountryCode enum.)
FAULTY = {
    "missing_unit": ("1 Infinite Loop", "Apt", "Cupertino", "CA", "95014", "US"),
    "po_box": ("PO Box 123", "", "Austin", "TX", "78701", "US"),
    "military": ("Unit 2050 Box 4190", "", "APO", "AP", "96278", "US"),
    "zip_state_mismatch": ("1 Market St", "", "San Francisco", "NY", "94105", "US"),
    "city_zip_mismatch": ("1 Market St", "", "Los Angeles", "CA", "94105", "US"),
    "subdivision_typo": ("1 Market St", "", "San Francisco", "Californa", "94105", "US"),
    "postal_code_format": ("500 Boylston St", "", "Boston", "MA", "2116", "US"),
    "zip_not_found": ("12 Nowhere Rd", "", "Springfield", "IL", "00000", "US"),
    "missing_field": ("", "", "Chicago", "IL", "60606", "US"),
    "bad_subdivision": ("1 Main St", "", "Springfield", "ZZ", "62701", "US"),
    "invalid_characters": ("1 Main\tSt", "", "Springfield", "IL", "62701", "US"),
    "line_too_long": ("1 Main St " + "x" * 260, "", "Springfield", "IL", "62701", "US"),
    "unparseable_address": ("'; DROP TABLE orders; --", "", "Springfield", "IL", "62701", "US"),
}
_GATEWAYS = ["shopify_payments"] * 6 + ["paypal", "apple_pay", "google_pay", "klarna", "gift_card", "manual"]
_TYPES = ["standard"] * 14 + ["preorder", "gift", "subscription", "digital", "wholesale", "marketplace"]


def generate_order_input(rnd: random.Random, products: list[Product], faulty_share: float = 0.12) -> dict:
    """One order as the sandbox's create-order endpoint takes it (scenario-format field names)."""
    country = rnd.choice(["US"] * 10 + ["CA", "GB", "DE", "FR", "ES", "MX", "AU"])
    name = rnd.choice(_NAMES)
    fault = None
    if rnd.random() < faulty_share:
        fault = rnd.choice(sorted(FAULTY))
        a1, a2, city, prov, zp, country = FAULTY[fault]
    else:
        a1, a2, city, prov, zp = rnd.choice(_GOOD[country])
    locale = rnd.choice(_LOCALES.get(country, ["en"]))
    physical = [p for p in products if "digital" not in p.tags and "gift_card" not in p.tags]
    lines = []
    for p in rnd.sample(physical if rnd.random() < 0.9 else products, k=rnd.choice([1, 1, 1, 2, 2, 3])):
        v = rnd.choice(p.variants)
        lines.append({"sku": v.sku, "quantity": rnd.choice([1, 1, 1, 2, 3]), "price": str(v.price)})
    local = name.split()[0].lower().replace("é", "e").replace("ë", "e").replace("'", "")
    return {
        "customer": {"email": f"{local}.{rnd.randrange(10**6)}@example.com", "locale": locale},
        "shipping_address": {"name": name, "address1": a1, "address2": a2, "city": city, "province_code": prov,
                             "zip": zp, "country_code": country},
        "line_items": lines,
        "gateway": rnd.choice(_GATEWAYS),
        "risk": rnd.choices(["low", "medium", "high"], weights=[90, 7, 3])[0],
        "order_type": rnd.choice(_TYPES),
        "shipping": rnd.choice(["standard", "standard", "express"]),
        "currency": _CURRENCY.get(country, "USD"),
        "address_fault": fault,
    }
