-- The cost of each run over a date range, by component, from the cost ledger (job_costs).
-- Parameters: :from_date, :to_date (inclusive).
SELECT r.run_id, r.logical_date, c.component, c.pricing,
       SUM(c.cost_usd) AS cost_usd, SUM(c.quantity) AS quantity, MIN(c.unit) AS unit
FROM runs AS r
JOIN job_costs AS c ON c.run_id = r.run_id
WHERE r.logical_date BETWEEN CAST(:from_date AS DATE) AND CAST(:to_date AS DATE)
GROUP BY r.run_id, r.logical_date, c.component, c.pricing
ORDER BY r.logical_date, r.run_id, c.component, c.pricing
