-- Landing tables written by the loader. Idempotent: run before every load.
create schema if not exists telemetry_raw;
create schema if not exists telemetry;

-- One row per load (one file, or the appended part of one file).
create table if not exists telemetry_raw.load_audit (
    load_id      bigint generated always as identity primary key,
    source_file  text        not null,
    sha256       text        not null,
    bytes        bigint      not null,
    byte_offset  bigint      not null default 0,
    line_offset  bigint      not null default 0,
    rows_read    bigint      not null default 0,
    oldest_call  timestamptz,
    inserted     bigint,
    duplicates   bigint,
    rejected     bigint,
    expired      bigint,
    started_at   timestamptz not null,
    finished_at  timestamptz,
    -- loaded: raw rows committed, llm_calls not yet; modelled: llm_calls committed (dbt post-hook);
    -- done: marts rebuilt; aborted: the load was interrupted and undone by the next run.
    status       text        not null check (status in ('loaded', 'modelled', 'done', 'aborted'))
);
-- Added in 0.2.0 (this file is re-applied whenever it changes, so existing databases gain the column):
-- duplicates whose values differ from the stored call's (a part of duplicates; see telemetry.call_conflicts).
alter table telemetry_raw.load_audit add column if not exists conflicts bigint;

-- Numbers the records of the load being written (reset by the loader at each load, under its lock).
create sequence if not exists telemetry_raw.usage_rows_record_number;

-- The CSV rows as text, exactly as read, with their lineage. dbt types them in stg_telemetry__usage_rows.
-- A work table: it holds only the loads in flight (emptied once every load is done, loader.pipeline
-- release_landed_rows) and is unlogged, so landing a row writes no WAL; what a row became is kept in llm_calls,
-- rejected_rows or call_conflicts. (A table an earlier version created logged is made unlogged once empty.)
-- The defaults serve the loader's bulk path, which COPYs the file's bytes as they are: the load id and the
-- line offset come from transaction-local settings, the record number from the sequence above.
create unlogged table if not exists telemetry_raw.usage_rows (
    load_id            bigint      not null default current_setting('telemetry.load_id')::bigint,
    record_number      bigint      not null default nextval('telemetry_raw.usage_rows_record_number'),
    line_number        bigint      not null
        default currval('telemetry_raw.usage_rows_record_number') + current_setting('telemetry.line_delta')::bigint,
    loaded_at          timestamptz not null default now(),
    "timestamp"        text,
    model              text,
    prompt_tokens      text,
    completion_tokens  text,
    task_success       text,
    task_type          text,
    duration_ms        text,
    notes              text,
    session_id         text,
    error_message      text,
    cost_usd           text,
    cache_read_tokens  text,
    cache_write_tokens text,
    parse_error        text
);
-- Rows are appended in load order, so a BRIN index finds a load's rows at almost no cost to the COPY (0.2.0's
-- btree on (load_id, record_number) cost more to keep up than it saved; it is dropped).
drop index if exists telemetry_raw.usage_rows_load_record;
create index if not exists usage_rows_load on telemetry_raw.usage_rows using brin (load_id);

-- Where each file was read up to, for incremental reads; moves in the same transaction as the rows.
create table if not exists telemetry_raw.file_checkpoints (
    source_file       text        primary key,
    head_bytes        integer     not null,
    head_fingerprint  text        not null,
    bytes_read        bigint      not null,
    lines_read        bigint      not null,
    records_read      bigint      not null,
    clean_end         boolean     not null,
    updated_at        timestamptz not null
);
-- Added in 0.2.0: the file as it was when read (an unchanged stat means an unchanged file; mtime_ns is null when
-- the file changed too recently to trust it), and the SHA-256 of every byte read, [0, bytes_read), which catches
-- edits anywhere. Null in checkpoints of 0.1.0: those are verified against the load audit's sha256 instead.
alter table telemetry_raw.file_checkpoints add column if not exists file_size bigint;
alter table telemetry_raw.file_checkpoints add column if not exists mtime_ns bigint;
alter table telemetry_raw.file_checkpoints add column if not exists ctime_ns bigint;
alter table telemetry_raw.file_checkpoints add column if not exists file_id text;
alter table telemetry_raw.file_checkpoints add column if not exists prefix_fingerprint text;


-- Small facts the loader keeps about itself, e.g. which version of the staging rules the view was built from.
create table if not exists telemetry_raw.loader_state (
    key    text primary key,
    value  text not null
);
