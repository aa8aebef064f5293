-- Current events whose wall-clock span overlaps [:at - :window_s, :at + :window_s].
-- Parameters: :at (an ISO timestamp; UTC when it has no offset), :window_s (seconds).
SELECT start_ts, end_ts, camera_id, label, confidence, video_id, uri, start_s, end_s, event_id
FROM current_action_events
WHERE start_ts < CAST(:at AS TIMESTAMP WITH TIME ZONE) + CAST(:window_s AS INTEGER) * INTERVAL '1 second'
  AND end_ts > CAST(:at AS TIMESTAMP WITH TIME ZONE) - CAST(:window_s AS INTEGER) * INTERVAL '1 second'
ORDER BY start_ts, camera_id
