"""Vocabulary and templates for the support-ticket simulator (rendering: ``sim.render``).

Kept apart from ``simulator.py`` so the wording can grow without burying the row logic.
The vocabulary has three "worlds":
- the old world (``INTENT_TEMPLATES`` with ``OLD_PRODUCTS``/``OLD_PLANS``): what the
  reference window and the golden set look like;
- launch wording (``NEW_PRODUCTS``/``NEW_PLANS``/``LAUNCH_TEMPLATES``): product_launch;
- slang (``SLANG_TEMPLATES``): slang_shift.
Markers (``SLANG_MARKERS``, ``LAUNCH_MARKERS``) never occur in old-world text, so drift
tests can count them.
"""

from __future__ import annotations

DEFAULT_LABELS = ("billing", "refund", "shipping", "account_access", "technical_issue", "cancellation")

# "Cancel my subscription and give me my money back": labelled cancellation until the
# concept_change scenario starts, refund afterwards (a policy change). Its own templates
# ("cancel" + subscription plan + "refund/money back") make both truths learnable.
CONCEPT_CHANGE_SUBINTENT = "subscription_refund"
# Vague texts ("please call me back") carry no signal: part of the irreducible error.
VAGUE_SUBINTENT = "vague"

OLD_PRODUCTS = (
    "AcmePhone X2", "AcmePhone X2 Max", "AcmePhone Lite", "AcmeBuds 3", "SoundBar S1",
    "AcmeWatch 5", "AcmeBook Air 13", "AcmeTab 10", "HomeHub Mini", "AcmeCam Indoor",
    "Vela Router AX", "AcmeTV Stick",
)
OLD_PLANS = (
    "AcmeCloud Plus", "AcmeMusic Family", "AcmeCare Protect", "AcmeTV Premium", "AcmeOne Bundle",
)
# product_launch: names no old-world text contains.
NEW_PRODUCTS = ("Nimbus Hub", "Nimbus Hub Mini", "ZetaWatch Pro", "ZetaBuds Air", "Orion Cam 360")
NEW_PLANS = ("Nimbus Home Plan", "ZetaFit Premium")
LAUNCH_NAMES = NEW_PRODUCTS + NEW_PLANS
# Words that only launch rows use (names, plus launch-only wording).
LAUNCH_MARKERS = ("Nimbus", "ZetaWatch", "ZetaBuds", "ZetaFit", "Orion", "preorder", "eSIM", "passkey",
                  "mesh")

# {slot} -> values. {product}/{plan} are handled by `render` (old vs launch catalogue).
SLOTS: dict[str, tuple[str, ...]] = {
    "amount": ("$9.99", "$12.99", "$14.99", "$29", "$49.00", "$79.99", "$129", "$249.99", "€19.99",
               "£7.99", "€59"),
    "carrier": ("UPS", "FedEx", "DHL", "USPS", "the courier", "Royal Mail", "the delivery guy"),
    "days": ("3 days", "a week", "two weeks", "10 days", "5 business days", "over a month", "4 days"),
    "time": ("yesterday", "this morning", "since Monday", "for two days now", "last night", "all week"),
    "error": ("error 0x80070005", "error E-104", "a black screen", "the spinning wheel", "error code 503",
              "'something went wrong'"),
    "month": ("this month", "last month", "in March", "on my last statement", "again this month"),
    # Accented names: legit non-ASCII that cleaning must keep (and mojibake can garble).
    "name": ("Maria", "James", "Renée", "José", "Zoë", "Chen Wei", "Aisha", "François", "Ana Núñez", "Tom",
             "Priya", "Łukasz", "Sven", "Olga"),
    "country": ("Canada", "Mexico", "Germany", "the UK", "Australia", "Ireland"),
    "email": ("maria.k@example.com", "jdoe82@mail.example", "renee.m@example.org", "tom_w@example.net"),
    "phone": ("+1 415 555 0134", "(555) 010-2233", "+44 20 7946 0958", "555-0199"),
}

# intent -> sub-intent -> templates. Sub-intents named *_mixed borrow another intent's
# words on purpose (charged for an order that never arrived): natural ambiguity.
INTENT_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "billing": {
        "double_charge": (
            "I was charged twice for my {plan} subscription {month}, can you fix it?",
            "Why do I see two charges of {amount} on my card for {plan}?",
            "Got billed {amount} two times for the same {product} order.",
            "There is a duplicate charge on my statement for {plan}.",
            "My bank shows {amount} taken twice {time} for {plan}.",
        ),
        "wrong_amount": (
            "My invoice for {plan} says {amount} but the advertised price was lower.",
            "Why did my {plan} bill go up to {amount}?",
            "I was overcharged for the {product}, the checkout price was different.",
            "The amount on my {plan} invoice doesn't match what I signed up for.",
            "You charged me {amount} for {plan} instead of the promo price.",
        ),
        "payment_method": (
            "How do I update the card on file for {plan}?",
            "My payment for {plan} keeps getting declined but the card is fine.",
            "Can I pay for the {product} in instalments with PayPal?",
            "I need to change the billing address on my invoices.",
            "Please switch my {plan} payments to my new credit card.",
        ),
        "invoice": (
            "Can you send me a VAT invoice for my {product} purchase?",
            "Where can I download the invoice for order {order}?",
            "I need a receipt for {plan} for my expense report.",
            "The invoice for {order} has the wrong company name on it.",
        ),
        "unknown_charge": (
            "There is a charge of {amount} from Acme I don't recognise.",
            "What is this {amount} payment to Acme {month}?",
            "I see a charge for {plan} but I never subscribed to it.",
        ),
        "billing_mixed": (
            "I was charged {amount} for order {order} but it never arrived.",
            "Paid {amount} for {plan} and I can't even log in to use it.",
        ),
    },
    "refund": {
        "damaged": (
            "My {product} arrived damaged, I want a refund.",
            "The screen of my {product} was cracked out of the box, please refund me.",
            "The {product} I got is defective, I'd like a full refund.",
        ),
        "return_refund": (
            "I returned the {product} {days} ago and still no refund.",
            "When will I get my money back for the returned {product}?",
            "Your warehouse received my return for order {order} but the refund was not issued.",
            "I sent back the {product}, where is my refund?",
        ),
        "refund_status": (
            "What's the status of my refund for order {order}?",
            "The refund of {amount} is still not on my card.",
            "You promised a refund of {amount} {days} ago.",
            "How long does a refund take to show up on my credit card?",
        ),
        "not_as_described": (
            "The {product} is not what was advertised, I'd like my money back.",
            "I want to return my {product} for a full refund, it doesn't work as described.",
            "The {product} is much smaller than in the photos, refund please.",
        ),
        "price_drop": (
            "Can I get a partial refund? The {product} was discounted a day after I bought it.",
            "The price of the {product} dropped right after I bought it, can you refund the difference?",
        ),
        "refund_mixed": (
            "The {product} never arrived so I want my money back.",
            "The {plan} app has been broken for weeks, I want a refund for those weeks.",
        ),
    },
    "shipping": {
        "where_is_order": (
            "Where is my {product}? Order {order} still hasn't arrived.",
            "My package was supposed to arrive {time} but nothing came.",
            "The tracking for order {order} hasn't updated in {days}.",
            "It's been {days} and my {product} is still not here.",
        ),
        "delayed": (
            "{carrier} says my {product} is delayed again.",
            "The delivery of order {order} keeps getting pushed back.",
            "Why is my {product} stuck at the {carrier} depot?",
        ),
        "address_change": (
            "Can I change the delivery address for order {order}?",
            "I moved, please ship the {product} to my new address.",
            "I typed the wrong postcode for my {product} delivery.",
        ),
        "lost": (
            "{carrier} marked order {order} as delivered but I never got it.",
            "The tracking says delivered but there's no package at my door.",
            "My {product} parcel was left with a neighbour I don't know.",
        ),
        "options": (
            "Do you ship the {product} to {country}?",
            "How much is express shipping for the {product}?",
            "Can I pick up my {product} in store instead of home delivery?",
        ),
        "shipping_mixed": (
            "I paid {amount} for express shipping but order {order} came late.",
            "I received the wrong item, I ordered the {product} but got something else.",
        ),
    },
    "account_access": {
        "password_reset": (
            "I can't log in to my Acme account, the password reset email never arrives.",
            "I forgot my password and the reset link has expired.",
            "The reset password link says invalid token.",
            "I keep getting 'wrong password' even after resetting it.",
        ),
        "locked": (
            "My account is locked after too many login attempts.",
            "Account locked, I can't access my {plan} settings.",
            "It says my account is suspended, I can't sign in.",
        ),
        "two_factor": (
            "I'm not getting the 2FA code on my new {product}.",
            "I lost my phone with the authenticator app, how do I get into my account?",
            "The verification code never comes by SMS.",
        ),
        "email_change": (
            "I no longer have access to the email on my account.",
            "How do I change the email address I log in with?",
        ),
        "hacked": (
            "Someone changed my password, I think my account was hacked.",
            "I got a login alert from another country, please secure my account.",
            "There are devices signed in to my account that aren't mine.",
        ),
        "access_mixed": (
            "I can't log in to cancel my {plan}.",
            "I'm locked out and I think I'm still being billed for {plan}.",
        ),
    },
    "technical_issue": {
        "power": (
            "My {product} won't turn on after the update.",
            "The {product} is stuck on the logo screen.",
            "My {product} keeps restarting by itself.",
        ),
        "connectivity": (
            "My {product} won't connect to wifi.",
            "Bluetooth pairing fails between the {product} and my laptop.",
            "The {product} keeps dropping the connection.",
        ),
        "app_error": (
            "The Acme app crashes every time I open {plan}.",
            "I get {error} when I try to sync my {product}.",
            "The {plan} app won't load, it just shows {error}.",
        ),
        "battery": (
            "The battery on my {product} drains in a couple of hours.",
            "My {product} gets really hot while charging.",
            "The {product} won't charge past 80%.",
        ),
        "firmware": (
            "The latest firmware update broke my {product}.",
            "I can't install the update on my {product}, it fails halfway.",
            "Since the update the sound on my {product} is distorted.",
        ),
        "tech_mixed": (
            "My {product} stopped working after {days}, is it under warranty?",
            "The {plan} app logs me out every few minutes.",
        ),
    },
    "cancellation": {
        "cancel_subscription": (
            "Please cancel my {plan} subscription.",
            "How do I stop {plan} from renewing?",
            "I want to cancel {plan} at the end of this billing period.",
            "Turn off auto-renew for my {plan}, please.",
        ),
        "close_account": (
            "Please close my Acme account and delete my data.",
            "I want to delete my account permanently.",
            "How do I deactivate my Acme account for good?",
        ),
        "cancel_order": (
            "I want to cancel order {order} before it ships.",
            "Can I still cancel my {product} order? I placed it {time}.",
        ),
        "end_trial": (
            "I don't use {plan} anymore, end my membership.",
            "End my {plan} trial before I get charged.",
            "Please don't renew my {plan} membership next month.",
        ),
        CONCEPT_CHANGE_SUBINTENT: (
            "I want to cancel my {plan} subscription and get my money back for this month.",
            "Cancel {plan} and refund the {amount} you charged me for the renewal.",
            "Please cancel my {plan} renewal and return the payment.",
            "I didn't mean to renew {plan}, cancel it and give me my money back.",
            "Stop my {plan} subscription and refund the unused months.",
            "Cancel the {plan} subscription and refund me, I haven't used it since it renewed.",
        ),
        "cancel_mixed": (
            "My {product} is broken again, I'm done, cancel everything.",
            "Cancel order {order}, it's taking too long to ship.",
        ),
    },
}
# Relative sub-intent weights (default 1): the concept sub-intent is a third of
# cancellation traffic so its relabelling is visible in a 14-day window.
SUBINTENT_WEIGHTS = {CONCEPT_CHANGE_SUBINTENT: 2.5}

VAGUE_TEMPLATES = (
    "I need some help with my {product}.",
    "Please call me back, it's about my account.",
    "Quick question about order {order}.",
    "Is anyone there?",
    "This is the third time I'm contacting you, please respond.",
    "Not happy with your service at all.",
    "I have an issue with my {plan}.",
    "Can someone from support get back to me about the {product}?",
    "Following up on my previous ticket.",
    "See the attached screenshot.",
)

# Labels outside DEFAULT_LABELS still get texts: the label's own words plus context.
GENERIC_TEMPLATES = (
    "I have a question about {topic} for my {product}.",
    "Need help with {topic}, please.",
    "{topic} problem with order {order}.",
    "Can someone help me with {topic} on my account?",
    "Hello, it's about {topic} again for the {product}.",
)

# product_launch only: launch-day wording around the new catalogue.
LAUNCH_TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": ("I was charged the launch price twice for my {product} preorder.",
                "My {plan} trial converted to paid on launch day without warning."),
    "refund": ("You cancelled my {product} preorder, where is my deposit refund?",
               "The {product} launch bundle was missing the dock, refund the bundle price."),
    "shipping": ("My {product} preorder still says awaiting launch stock.",
                 "When do launch-day {product} preorders ship?"),
    "account_access": ("I can't sign in to the {product} companion app with my Acme ID.",
                       "The {product} setup asks for a passkey I never created."),
    "technical_issue": ("The {product} mesh satellite won't pair with the main node.",
                        "eSIM activation fails on my {product}."),
    "cancellation": ("Cancel my {product} preorder please.",
                     "I want to cancel the {plan} that came bundled with my {product}."),
}

# slang_shift: same intents, new phrasing. Lowercase, few stop words, lots of OOV.
SLANG_TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "bro yall double dipped on my card for {plan} smh",
        "lowkey got hit twice for {amount} fr",
        "ngl this {plan} bill is sus, {amount}??",
        "yall took my money twice istg",
        "deadass {plan} took {amount} outta my card two times rn",
    ),
    "refund": (
        "where my bread at bro, sent the {product} back ages ago",
        "{product} came busted, i want my bread back fr",
        "ngl still waiting on my {amount} back, yall ghosted",
        "yall owe me {amount} no cap, the {product} went back",
        "run me my money rn the {product} is straight trash",
    ),
    "shipping": (
        "bro the parcel is MIA",
        "my {product} is MIA fr, order {order} tracking ghosted me",
        "lowkey think {carrier} yeeted my box",
        "order {order} ghosted me, still nowhere smh",
        "where my {product} at bro, been {days}",
    ),
    "account_access": (
        "my acct got yeeted",
        "lowkey can't log in fr",
        "locked outta my acct rn smh",
        "the 2fa code ghosted me bro",
        "ngl my acct got jacked, sus login from somewhere",
        "cant get in my acct no cap",
    ),
    "technical_issue": (
        "my {product} is bricked fr",
        "{product} lowkey buggin after the update",
        "ngl the {plan} app is cooked",
        "bro my {product} is dead rn, wont even boot",
        "{product} glitching istg",
    ),
    "cancellation": (
        "yeet my {plan} sub, im done fr",
        "lowkey tryna dip from {plan} rn",
        "bro how do i dip from {plan}",
        "unsub me from {plan} no cap, not worth it",
        "im out, nuke my acct fr",
    ),
}
SLANG_CONCEPT_TEMPLATES = (
    "cancel my {plan} sub and gimme my money back fr",
    "yeet my {plan} sub and refund me bro",
    "lowkey want {plan} cancelled and my {amount} back rn",
)
# Tokens only slang texts contain (whole words, case-insensitive). "fr" and "rn" are
# left out: a dropped letter turns "for" into "fr" in ordinary text.
SLANG_MARKERS = ("yeeted", "yeet", "lowkey", "ngl", "bro", "MIA", "ghosted", "bricked", "smh", "istg",
                 "deadass", "tryna", "no cap", "sus", "gimme", "yall", "outta", "buggin", "unsub")
SLANG_EMOJI = (" 💀", " 😭", " 🙄", "", "", "")  # half the slang rows end in one
