-- Dollars per hour of footage, per date, over the runs that have a cost ledger.
-- Parameters: :from_date, :to_date (inclusive).
SELECT r.logical_date,
       COUNT(DISTINCT r.run_id) AS runs,
       SUM(c.cost_usd) AS cost_usd,
       SUM(c.cost_usd) / NULLIF((SELECT SUM(r2.video_seconds) FROM runs AS r2
                                 WHERE r2.logical_date = r.logical_date
                                   AND r2.run_id IN (SELECT run_id FROM job_costs)) / 3600.0, 0)
           AS usd_per_video_hour
FROM runs AS r
JOIN job_costs AS c ON c.run_id = r.run_id
WHERE r.logical_date BETWEEN CAST(:from_date AS DATE) AND CAST(:to_date AS DATE)
GROUP BY r.logical_date
ORDER BY r.logical_date
