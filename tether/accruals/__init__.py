"""Bottom-up accruals: NEM12/NEM13 meter data, accounts and tariffs, the unbilled run."""
