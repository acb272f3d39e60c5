-- Omny clips (episodes): program, title and audio duration, as last seen (an hourly fold: macros/dimension.sql).
{{ dimension('clip_id', ['program_id', 'clip_title', 'clip_audio_duration_seconds', 'playlist_id', 'playlist_title'], 'stg_omny__downloads', 'downloaded_at') }}
