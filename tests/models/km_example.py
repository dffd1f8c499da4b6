"""The hand-worked Kaplan–Meier example shared by the incidence and Kaplan–Meier tests."""

from __future__ import annotations

import numpy as np

# A dozen episodes, worked by hand. Days after return to sport; "event" = recurrence.
#   A recurs day 5          B lost day 10          C, D recur day 14 (tie of two)
#   E lost day 20           F recurs day 20 (a recurrence comes before a loss on the same
#                           day, so E is still at risk on day 20)
#   G lost day 40           H recurs day 60        I lost day 100
#   J recurs day 200        K followed 400 days    L followed exactly 365 days
# Risk sets and Kaplan–Meier survival S:
#   day   5: 12 at risk, 1 recurs  S = 11/12
#   day  14: 10 at risk (A recurred, B lost), 2 recur  S = 11/12 * 8/10 = 11/15
#   day  20:  8 at risk (E, F, G, H, I, J, K, L), 1 recurs  S = 11/15 * 7/8 = 77/120
#   day  60:  5 at risk (H, I, J, K, L), 1 recurs  S = 77/120 * 4/5 = 77/150
#   day 200:  3 at risk (J, K, L), 1 recurs  S = 77/150 * 2/3 = 77/225
# Cumulative incidence 1 - S at the horizons:
#   28: 43/120   90: 73/150   180: 73/150   365: 148/225
# At risk at the horizon (still followed, not recurred, just before it): 6, 4, 3, 2 (L is
# followed through day 365). Recurrences by the horizon: 4, 5, 5, 6.
FOLLOWED = np.array([400, 10, 400, 400, 20, 400, 40, 400, 100, 400, 400, 365], dtype=float)
EVENT = np.array([5, np.nan, 14, 14, np.nan, 20, np.nan, 60, np.nan, 200, np.nan, np.nan])
INCIDENCE = np.array([43 / 120, 73 / 150, 73 / 150, 148 / 225])
