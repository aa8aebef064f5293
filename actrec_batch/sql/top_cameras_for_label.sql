-- The cameras that saw a label most often over a date range.
-- Parameters: :label, :from_date, :to_date (inclusive), :limit.
SELECT camera_id, COUNT(*) AS events, SUM(end_s - start_s) AS seconds, MAX(confidence) AS max_confidence
FROM current_action_events
WHERE label = :label
  AND logical_date BETWEEN CAST(:from_date AS DATE) AND CAST(:to_date AS DATE)
GROUP BY camera_id
ORDER BY events DESC, camera_id
LIMIT CAST(:limit AS INTEGER)
