package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/jobs"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
	"github.com/cachetlab/cachet/storage"
	"github.com/cachetlab/cachet/subjects"
)

// stack is what serve and worker open: storage, the model with its services, and the job queue.
type stack struct {
	db         *storage.DB
	objects    *storage.Objects
	weights    *servingModel
	classifier *classify.Service  // nil without a model
	subjects   *subjects.Service  // always (list, read, delete need no model)
	generator  *generate.Endpoint // nil without a model
	queue      *jobs.Queue
	closers    []func()
}

// stackRole says what a process does with the queue: submit (an API without its own worker), work (a
// worker) or both (serve's embedded worker).
type stackRole struct{ submit, work bool }

// openStack opens every component before any is used: a failure stops the start with one line naming the
// component, and what was opened is closed.
func openStack(ctx context.Context, cfg cachet.Config, role stackRole) (_ *stack, err error) {
	st := &stack{}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	// A named adapters file must exist: only the default one may be absent (serving without subjects).
	if cfg.Adapters != "" {
		if _, err := os.Stat(cfg.Adapters); err != nil {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapters: --adapters %s cannot be read: %v", cfg.Adapters, err)
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	if st.db, err = storage.MigrateAndOpen(startCtx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	st.closers = append(st.closers, st.db.Close)
	if st.objects, err = storage.OpenObjects(startCtx, cfg.S3); err != nil {
		return nil, err
	}
	if err := model.SetNumThreads(cfg.TorchThreads); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.weights, err = loadServingModel(ctx, cfg.Weights); err != nil {
		return nil, err
	}
	st.closers = append(st.closers, st.weights.close)

	qopts := jobs.Options{MaxQueued: cfg.Jobs.MaxQueued, Deadline: cfg.Jobs.Deadline, Retention: cfg.Jobs.Retention,
		RescueAfter: cfg.Jobs.RescueAfter, MaxQueuedPerKind: map[cachet.JobKind]int{}}
	for k, n := range cfg.Jobs.MaxQueuedPerKind {
		qopts.MaxQueuedPerKind[cachet.JobKind(k)] = n
	}
	if role.work && st.weights.dit != nil {
		kinds := make([]cachet.JobKind, len(cfg.Jobs.Queues))
		for i, k := range cfg.Jobs.Queues {
			kinds[i] = cachet.JobKind(k)
		}
		qopts.Workers = &jobs.WorkerOptions{Handlers: st.handlers(), Kinds: kinds, Concurrency: cfg.Jobs.Concurrency}
	}
	if st.queue, err = jobs.New(st.db, qopts); err != nil {
		return nil, err
	}

	subjectOpts := subjects.Options{StaleAfter: cfg.StaleAfter, OrphanAfter: cfg.OrphanAfter}
	if role.submit {
		subjectOpts.Queue = st.queue
	}
	st.subjects = subjects.New(st.db, st.objects, nil, subjectOpts)
	if st.weights.dit == nil {
		return st, nil
	}
	classifier, releaseFeatures, err := newClassifyService(ctx, st.db, st.weights.worker, st.weights.dit, cfg.Weights, cfg.Classify)
	if err != nil {
		return nil, err
	}
	st.classifier = classifier
	st.closers = append(st.closers, releaseFeatures)
	defaultCache, err := stepcache.ParseConfig(cfg.DefaultCache)
	if err != nil {
		return nil, fmt.Errorf("--default-cache: %w", err)
	}
	adaptersFile := cfg.Adapters
	if adaptersFile == "" {
		adaptersFile = adaptersPath(cfg.Weights)
	}
	p, err := newPersonalization(ctx, st.weights.worker, st.weights.dit, cfg.Weights, adaptersFile,
		generate.Options{DefaultCache: defaultCache, DefaultDetail: generate.Detail{Strength: cfg.DefaultDetail}, BatchImages: cfg.Jobs.BatchImages})
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, p.close)
	st.subjects, st.generator = p.endpoints(st.db, st.objects, subjectOpts)
	return st, nil
}

// handlers are the worker's job handlers; they read the stack's services when a job runs (after
// openStack has made them).
func (st *stack) handlers() map[cachet.JobKind]jobs.Handler {
	return map[cachet.JobKind]jobs.Handler{
		cachet.JobGenerate: func(ctx context.Context, run jobs.Run) (any, error) {
			var req cachet.GenerateRequest
			if err := decodeArgs(run, &req); err != nil {
				return nil, err
			}
			return st.generator.GenerateJob(ctx, run.ID, req, run.Progress)
		},
		cachet.JobSubject: func(ctx context.Context, run jobs.Run) (any, error) {
			var args subjects.BuildArgs
			if err := decodeArgs(run, &args); err != nil {
				return nil, err
			}
			return st.subjects.BuildJob(ctx, args)
		},
		cachet.JobCollectionBuild: func(ctx context.Context, run jobs.Run) (any, error) {
			var args cachet.CollectionBuild
			if err := decodeArgs(run, &args); err != nil {
				return nil, err
			}
			return st.classifier.Build(ctx, args.CollectionID, args.Request)
		},
	}
}

func decodeArgs(run jobs.Run, v any) error {
	if err := json.Unmarshal(run.Payload, v); err != nil {
		return cachet.Wrap(cachet.CodeInvalidArgument, err, "job %s: arguments this worker cannot read (%v); is it an older version?", run.ID, err)
	}
	return nil
}

func (st *stack) close() {
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
}
