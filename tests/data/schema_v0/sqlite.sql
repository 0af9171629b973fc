-- A database made by hpoqueue before schema versions (commit 468e3dc: Storage() ran create_all, no
-- alembic_version table), holding two experiments, trials, metrics and events; `sqlite3 FILE .dump`.
-- sqlite.json is what that hpoqueue's Storage read back from it.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE experiments (
	id VARCHAR(64) NOT NULL, 
	name VARCHAR(255), 
	state VARCHAR(24) NOT NULL, 
	config JSON NOT NULL, 
	work_dir TEXT NOT NULL, 
	optimize_mode VARCHAR(16) NOT NULL, 
	concurrency INTEGER NOT NULL, 
	max_trial_number INTEGER, 
	max_duration FLOAT, 
	next_seq INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	ended_at DATETIME, 
	message TEXT, 
	PRIMARY KEY (id)
);
INSERT INTO experiments VALUES('legacy1','mnist','DONE','{"trialCommand": "python train.py", "searchSpace": {"lr": {"_type": "loguniform", "_value": [1e-05, 0.1]}}}','/tmp/work/legacy1','maximize',2,3,3600.0,4,'2026-12-03 07:50:49.018074','2026-12-03 07:50:49.018074','2026-12-03 07:50:49.066747','budget spent');
INSERT INTO experiments VALUES('legacy2',NULL,'RUNNING','{"trialCommand": "echo hi"}','/tmp/work/legacy2','minimize',1,NULL,NULL,1,'2026-12-03 07:50:49.033438','2026-12-03 07:50:49.033438',NULL,NULL);
CREATE TABLE trials (
	id VARCHAR(96) NOT NULL, 
	experiment_id VARCHAR(64) NOT NULL, 
	seq INTEGER NOT NULL, 
	params JSON NOT NULL, 
	state VARCHAR(24) NOT NULL, 
	attempt INTEGER NOT NULL, 
	queue VARCHAR(255), 
	host VARCHAR(255), 
	gpus JSON, 
	pid INTEGER, 
	exit_code INTEGER, 
	exit_reason TEXT, 
	final_value FLOAT, 
	final_data JSON, 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	ended_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(experiment_id) REFERENCES experiments (id) ON DELETE CASCADE
);
INSERT INTO trials VALUES('legacy1-1','legacy1',1,'{"lr": 0.01}','SUCCEEDED',1,'gpu0','box1','[0, 1]',4242,0,NULL,0.82999999999999996003,'{"default": 0.83, "loss": 0.2}','2026-12-03 07:50:49.035057','2026-12-01 08:30:15.123456','2026-12-03 07:50:49.056635');
INSERT INTO trials VALUES('legacy1-2','legacy1',2,'{"lr": 0.001, "opt": "sgd"}','FAILED',2,'gpu1','box2','[1]',NULL,1,'exit code 1: Traceback ... ''quoted''',NULL,NULL,'2026-12-03 07:50:49.035057','2026-12-01 08:30:15.123456','2026-12-03 07:50:49.065667');
INSERT INTO trials VALUES('legacy1-3','legacy1',3,'{"lr": 1e-05}','WAITING',1,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'2026-12-03 07:50:49.035057',NULL,NULL);
CREATE TABLE metrics (
	id INTEGER NOT NULL, 
	trial_id VARCHAR(96) NOT NULL, 
	attempt INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	step INTEGER NOT NULL, 
	value FLOAT NOT NULL, 
	data JSON, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(trial_id) REFERENCES trials (id) ON DELETE CASCADE
);
INSERT INTO metrics VALUES(1,'legacy1-1',1,'intermediate',0,0.5,NULL,'2026-12-03 07:50:49.041792');
INSERT INTO metrics VALUES(2,'legacy1-1',1,'intermediate',1,0.69999999999999995559,NULL,'2026-12-03 07:50:49.049062');
INSERT INTO metrics VALUES(3,'legacy1-1',1,'intermediate',2,0.81000000000000005329,NULL,'2026-12-03 07:50:49.049497');
INSERT INTO metrics VALUES(4,'legacy1-1',1,'final',0,0.82999999999999996003,'{"default": 0.83, "loss": 0.2}','2026-12-03 07:50:49.049852');
INSERT INTO metrics VALUES(5,'legacy1-2',1,'intermediate',0,0.10000000000000000555,'[1, 2]','2026-12-03 07:50:49.059087');
INSERT INTO metrics VALUES(6,'legacy1-2',2,'intermediate',0,0.2000000000000000111,NULL,'2026-12-03 07:50:49.065301');
CREATE TABLE events (
	id INTEGER NOT NULL, 
	trial_id VARCHAR(96) NOT NULL, 
	attempt INTEGER NOT NULL, 
	kind VARCHAR(64) NOT NULL, 
	data JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(trial_id) REFERENCES trials (id) ON DELETE CASCADE
);
INSERT INTO events VALUES(1,'legacy1-1',1,'claimed','{"host": "box1", "worker": "celery@box1"}','2026-12-03 07:50:49.050203');
INSERT INTO events VALUES(2,'legacy1-2',1,'heartbeat lost','{}','2026-12-03 07:50:49.063736');
CREATE UNIQUE INDEX ix_trials_experiment_seq ON trials (experiment_id, seq);
CREATE UNIQUE INDEX ix_metrics_trial_attempt_kind_step ON metrics (trial_id, attempt, kind, step);
CREATE INDEX ix_events_trial ON events (trial_id);
COMMIT;
