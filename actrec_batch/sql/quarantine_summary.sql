-- What could not be processed, by reason and stage, over a date range.
-- Parameters: :from_date, :to_date (inclusive).
SELECT reason, stage, COUNT(*) AS files, COUNT(DISTINCT logical_date) AS dates,
       SUM(size_bytes) AS bytes, MIN(uri) AS example_uri
FROM quarantine
WHERE logical_date BETWEEN CAST(:from_date AS DATE) AND CAST(:to_date AS DATE)
GROUP BY reason, stage
ORDER BY files DESC, reason, stage
