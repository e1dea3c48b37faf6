package lab

import "errors"

func labSYNFlood(r *labRun) error          { return errors.New("todo") }
func labSYNFloodTUN(r *labRun) error       { return errors.New("todo") }
func labAcceptQueue(r *labRun) error       { return errors.New("todo") }
func labAcceptQueueTUN(r *labRun) error    { return errors.New("todo") }
func labFlowControl(r *labRun) error       { return errors.New("todo") }
func labFlowControlTUN(r *labRun) error    { return errors.New("todo") }
