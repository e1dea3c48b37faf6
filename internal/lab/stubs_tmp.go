package lab

import "errors"

func labSYNFlood(r *labRun) error          { return errors.New("todo") }
func labSYNFloodTUN(r *labRun) error       { return errors.New("todo") }
func labAcceptQueue(r *labRun) error       { return errors.New("todo") }
func labAcceptQueueTUN(r *labRun) error    { return errors.New("todo") }
