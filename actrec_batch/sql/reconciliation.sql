-- Per date: what the latest successful run discovered, against the videos and quarantine rows
-- loaded for that date. The invariant is discovered = videos + quarantined.
-- Parameters: :from_date, :to_date (inclusive).
SELECT r.logical_date,
       r.run_id,
       r.videos_discovered,
       (SELECT COUNT(*) FROM videos AS v WHERE v.logical_date = r.logical_date) AS videos,
       (SELECT COUNT(*) FROM quarantine AS q WHERE q.logical_date = r.logical_date) AS quarantined,
       r.videos_discovered = (SELECT COUNT(*) FROM videos AS v WHERE v.logical_date = r.logical_date)
           + (SELECT COUNT(*) FROM quarantine AS q WHERE q.logical_date = r.logical_date) AS reconciled
FROM runs AS r
WHERE r.status = 'success'
  AND r.cameras IS NULL
  AND r.logical_date BETWEEN CAST(:from_date AS DATE) AND CAST(:to_date AS DATE)
  AND r.finished_at = (SELECT MAX(r2.finished_at) FROM runs AS r2
                       WHERE r2.logical_date = r.logical_date AND r2.status = 'success' AND r2.cameras IS NULL)
ORDER BY r.logical_date
