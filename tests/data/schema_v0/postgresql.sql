-- A database made by hpoqueue before schema versions (commit 468e3dc: Storage() ran create_all, no
-- alembic_version table), holding two experiments, trials, metrics and events;
-- `pg_dump --no-owner --no-privileges --no-comments --inserts` (psql's backslash lines removed).
-- postgresql.json is what that hpoqueue's Storage read back from it.
--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.events (
    id integer NOT NULL,
    trial_id character varying(96) NOT NULL,
    attempt integer NOT NULL,
    kind character varying(64) NOT NULL,
    data json NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.events_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.events_id_seq OWNED BY public.events.id;


--
-- Name: experiments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.experiments (
    id character varying(64) NOT NULL,
    name character varying(255),
    state character varying(24) NOT NULL,
    config json NOT NULL,
    work_dir text NOT NULL,
    optimize_mode character varying(16) NOT NULL,
    concurrency integer NOT NULL,
    max_trial_number integer,
    max_duration double precision,
    next_seq integer NOT NULL,
    created_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    message text
);


--
-- Name: metrics; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.metrics (
    id integer NOT NULL,
    trial_id character varying(96) NOT NULL,
    attempt integer NOT NULL,
    kind character varying(16) NOT NULL,
    step integer NOT NULL,
    value double precision NOT NULL,
    data json,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: metrics_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.metrics_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: metrics_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.metrics_id_seq OWNED BY public.metrics.id;


--
-- Name: trials; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.trials (
    id character varying(96) NOT NULL,
    experiment_id character varying(64) NOT NULL,
    seq integer NOT NULL,
    params json NOT NULL,
    state character varying(24) NOT NULL,
    attempt integer NOT NULL,
    queue character varying(255),
    host character varying(255),
    gpus json,
    pid integer,
    exit_code integer,
    exit_reason text,
    final_value double precision,
    final_data json,
    created_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    ended_at timestamp with time zone
);


--
-- Name: events id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events ALTER COLUMN id SET DEFAULT nextval('public.events_id_seq'::regclass);


--
-- Name: metrics id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.metrics ALTER COLUMN id SET DEFAULT nextval('public.metrics_id_seq'::regclass);


--
-- Data for Name: events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.events VALUES (1, 'legacy1-1', 1, 'claimed', '{"host": "box1", "worker": "celery@box1"}', '2026-12-03 07:50:58.203568+00');
INSERT INTO public.events VALUES (2, 'legacy1-2', 1, 'heartbeat lost', '{}', '2026-12-03 07:50:58.227571+00');


--
-- Data for Name: experiments; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.experiments VALUES ('legacy2', NULL, 'RUNNING', '{"trialCommand": "echo hi"}', '/tmp/work/legacy2', 'minimize', 1, NULL, NULL, 1, '2026-12-03 07:50:58.159651+00', '2026-12-03 07:50:58.159651+00', NULL, NULL);
INSERT INTO public.experiments VALUES ('legacy1', 'mnist', 'DONE', '{"trialCommand": "python train.py", "searchSpace": {"lr": {"_type": "loguniform", "_value": [1e-05, 0.1]}}}', '/tmp/work/legacy1', 'maximize', 2, 3, 3600, 4, '2026-12-03 07:50:58.148617+00', '2026-12-03 07:50:58.148617+00', '2026-12-03 07:50:58.243662+00', 'budget spent');


--
-- Data for Name: metrics; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.metrics VALUES (1, 'legacy1-1', 1, 'intermediate', 0, 0.5, NULL, '2026-12-03 07:50:58.179572+00');
INSERT INTO public.metrics VALUES (2, 'legacy1-1', 1, 'intermediate', 1, 0.7, NULL, '2026-12-03 07:50:58.19156+00');
INSERT INTO public.metrics VALUES (3, 'legacy1-1', 1, 'intermediate', 2, 0.81, NULL, '2026-12-03 07:50:58.195537+00');
INSERT INTO public.metrics VALUES (4, 'legacy1-1', 1, 'final', 0, 0.83, '{"default": 0.83, "loss": 0.2}', '2026-12-03 07:50:58.19953+00');
INSERT INTO public.metrics VALUES (5, 'legacy1-2', 1, 'intermediate', 0, 0.1, '[1, 2]', '2026-12-03 07:50:58.223593+00');
INSERT INTO public.metrics VALUES (6, 'legacy1-2', 2, 'intermediate', 0, 0.2, NULL, '2026-12-03 07:50:58.237341+00');


--
-- Data for Name: trials; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.trials VALUES ('legacy1-3', 'legacy1', 3, '{"lr": 1e-05}', 'WAITING', 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-12-03 07:50:58.169346+00', NULL, NULL);
INSERT INTO public.trials VALUES ('legacy1-1', 'legacy1', 1, '{"lr": 0.01}', 'SUCCEEDED', 1, 'gpu0', 'box1', '[0, 1]', 4242, 0, NULL, 0.83, '{"default": 0.83, "loss": 0.2}', '2026-12-03 07:50:58.169346+00', '2026-12-01 08:30:15.123456+00', '2026-12-03 07:50:58.211623+00');
INSERT INTO public.trials VALUES ('legacy1-2', 'legacy1', 2, '{"lr": 0.001, "opt": "sgd"}', 'FAILED', 2, 'gpu1', 'box2', '[1]', NULL, 1, 'exit code 1: Traceback ... ''quoted''', NULL, NULL, '2026-12-03 07:50:58.169346+00', '2026-12-01 08:30:15.123456+00', '2026-12-03 07:50:58.239461+00');


--
-- Name: events_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.events_id_seq', 2, true);


--
-- Name: metrics_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.metrics_id_seq', 6, true);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);


--
-- Name: experiments experiments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.experiments
    ADD CONSTRAINT experiments_pkey PRIMARY KEY (id);


--
-- Name: metrics metrics_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.metrics
    ADD CONSTRAINT metrics_pkey PRIMARY KEY (id);


--
-- Name: trials trials_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.trials
    ADD CONSTRAINT trials_pkey PRIMARY KEY (id);


--
-- Name: ix_events_trial; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_events_trial ON public.events USING btree (trial_id);


--
-- Name: ix_metrics_trial_attempt_kind_step; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ix_metrics_trial_attempt_kind_step ON public.metrics USING btree (trial_id, attempt, kind, step);


--
-- Name: ix_trials_experiment_seq; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ix_trials_experiment_seq ON public.trials USING btree (experiment_id, seq);


--
-- Name: events events_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.trials(id) ON DELETE CASCADE;


--
-- Name: metrics metrics_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.metrics
    ADD CONSTRAINT metrics_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.trials(id) ON DELETE CASCADE;


--
-- Name: trials trials_experiment_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.trials
    ADD CONSTRAINT trials_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES public.experiments(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


