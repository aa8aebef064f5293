-- Events per day, label and camera, from the current model version of each date.
-- Parameters: :from_date, :to_date (YYYY-MM-DD, inclusive).
SELECT logical_date, label, camera_id, COUNT(*) AS events, AVG(confidence) AS mean_confidence
FROM current_action_events
WHERE logical_date BETWEEN CAST(:from_date AS DATE) AND CAST(:to_date AS DATE)
GROUP BY logical_date, label, camera_id
ORDER BY logical_date, label, camera_id
