"""How strong concept_change and label_shift are: which rows they touch at strength 1.

Kept apart from ``simulator.py`` (size). Both rules were tuned with
``bench/scenario_cost.py`` so that at strength 1 each costs a static model (first
champion, never retrained) at least 10 accuracy points on the drifted days; before,
concept_change cost ~5 and label_shift nothing (results/scenario_cost.json).

concept_change (a refund policy): cancelling something you paid for now refunds the
unused part, so the refunds team owns those tickets. Every cancellation sub-intent that
returns money (``CONCEPT_SUBINTENTS``: subscription refunds, subscription and trial
ends, order cancellations, "cancel everything") is relabelled refund with probability
``strength``; account closures stay cancellation. Texts and every other draw are
unchanged: only P(label | text) moves, as concept_shift expects. About 87% of
cancellation traffic (11% of all rows) is relabelled at strength 1.

label_shift (an outage of the sign-in service): the prior moves to technical_issue and
account_access (``simulator.OUTAGE_SHARES``), and a share ``OUTAGE_TEXT_SHARE *
strength`` of the rows of those two classes is written in outage wording
(``OUTAGE_TEMPLATES``: "can't sign in, is something down?"). The wording is the same
for both classes, so its label follows the new prior (2/3 technical_issue at strength
1). A static model read "can't sign in" as account_access before the outage; that is
why a prior shift costs it accuracy. Which rows get it comes from the simulator's own
outage stream, so no other draw moves.
"""

from __future__ import annotations

from ct_assets.sim.vocabulary import CONCEPT_CHANGE_SUBINTENT

CONCEPT_SUBINTENTS = frozenset({CONCEPT_CHANGE_SUBINTENT, "cancel_subscription", "end_trial", "cancel_order",
                                "cancel_mixed"})

OUTAGE_TEXT_SHARE = 0.5
OUTAGE_TEMPLATES = (
    "I can't sign in to my Acme account {time}, is something down?",
    "The login page just spins and then shows {error}.",
    "I can't log in to the {plan} app, it says {error}.",
    "Nobody in my house can sign in to Acme {time}.",
    "Login keeps failing with {error}, my password is right.",
    "I can't get into my account on the {product}, the sign-in screen won't load.",
    "Is the Acme login down? I've been locked out {time}.",
    "Every time I try to log in I get {error}.",
)
